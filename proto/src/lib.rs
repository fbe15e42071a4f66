//! Wire types of Bottomline and nothing else: the `.proto` files under `proto/`, compiled
//! at build time by `protox` (pure Rust) and `tonic-prost-build`, plus the encoded
//! file-descriptor set that the gRPC reflection service serves.
//!
//! Only the node's `rpc` layer uses these types; the domain never sees prost.

/// Version 1 of the protocol (`package bottomline.v1`).
pub mod v1 {
    // Generated code: a `oneof` whose variants differ in size (TicketEventBody.kind, where an
    // issued ticket is much larger than an acceptance) is prost's layout, not ours to box.
    #![allow(clippy::large_enum_variant)]
    tonic::include_proto!("bottomline.v1");
}

/// Encoded `FileDescriptorSet` of every `.proto` file, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bottomline_descriptor.bin"));
