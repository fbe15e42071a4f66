//! Bottomline node: the library behind the `bottomline` binary.
//!
//! Layout, bottom up (each module only uses the ones above it in this list):
//! - [`division`]: division codes (GB/T 2260 style) and the registry of names.
//! - [`period`]: ISO weeks, months, quarters, halves, years in China time.
//! - [`domain`]: county records and the rules each must satisfy on its own.
//! - [`memory`]: the allocator (glibc or jemalloc): setup, heap figures, giving memory back.
//! - [`store`]: the only module that knows sled; named trees, atomic write sets, durable flush.
//! - [`cells`]: statistics cells stored in blocks per (division, period), and the change log.
//! - [`stats`]: which cells a record contributes to; indicators derived from cells.
//! - [`ledger`]: validated writes of records + cells + change log in one commit.
//! - [`import`]: CSV / JSON-lines interchange files into the ledger, all or nothing per file.
//! - [`gen`]: deterministic synthetic data in the interchange format.
//! - [`report`]: rendering indicators as a table, JSON or CSV.
//! - [`config`]: the node's TOML configuration.
//! - [`rpc`]: the gRPC edge (the only user of `bottomline_proto`): the parent's sync service
//!   and the child's uplink.
//! - [`security`]: certificate identities, the PKI, mTLS (server and client), signatures.
//! - [`node`]: a running node: server, uplink, ordered shutdown.
//! - [`demo`]: a whole hierarchy in one process with generated data.
//! - [`tickets`]: rectification tickets: events, the state machine, the deterministic fold,
//!   statistics flows, inventories and their progress (pure domain, no storage).
//!
//! See ARCHITECTURE.md for the invariants.

pub mod cells;
pub mod config;
pub mod cycle;
pub mod demo;
pub mod division;
#[macro_use] // `vocabulary!`, reused by `tickets`
pub mod domain;
pub mod gen;
pub mod http;
pub mod import;
pub mod inbox;
pub mod ledger;
pub mod lineage;
pub mod link;
pub mod memory;
pub mod node;
pub mod period;
pub mod regions;
pub mod report;
pub mod rpc;
pub mod security;
pub mod spotcheck;
pub mod stats;
pub mod store;
pub mod tickets;
pub mod warning;
