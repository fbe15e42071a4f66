//! Names: real province and Shaanxi city names, the character tables of generated place and
//! person names, and the functions that make (unique) place names.

use std::collections::HashSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::sample::{rng_for, STREAM_NAME};

/// Real province names by GB/T 2260 code.
const PROVINCES: [(&str, &str); 31] = [
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
];

/// Real Shaanxi cities.
pub(super) const SHAANXI_CITIES: [(&str, &str); 10] = [
    ("6101", "西安市"),
    ("6102", "铜川市"),
    ("6103", "宝鸡市"),
    ("6104", "咸阳市"),
    ("6105", "渭南市"),
    ("6106", "延安市"),
    ("6107", "汉中市"),
    ("6108", "榆林市"),
    ("6109", "安康市"),
    ("6110", "商洛市"),
];

/// First characters of generated place names.
const PLACE_FIRST: [&str; 72] = [
    "安", "宝", "北", "长", "城", "大", "东", "丰", "凤", "富", "高", "古", "关", "广", "汉", "河",
    "红", "华", "黄", "吉", "金", "旧", "康", "兰", "乐", "临", "柳", "龙", "鹿", "洛", "马", "梅",
    "南", "宁", "平", "坪", "清", "泉", "仁", "三", "山", "上", "石", "双", "水", "顺", "太", "桃",
    "天", "铁", "白", "王", "文", "西", "下", "仙", "新", "兴", "杏", "阳", "杨", "永", "玉", "榆",
    "云", "枣", "中", "紫", "黑", "青", "千", "五",
];
/// Second characters of generated place names.
const PLACE_SECOND: [&str; 52] = [
    "安", "坝", "堡", "边", "昌", "川", "店", "定", "丰", "沟", "关", "河", "湖", "化", "集", "家",
    "涧", "江", "口", "岭", "林", "流", "梁", "陵", "峁", "门", "庙", "宁", "坪", "桥", "泉", "渠",
    "山", "寺", "滩", "塘", "台", "头", "湾", "王", "溪", "峡", "阳", "营", "峪", "原", "源", "寨",
    "庄", "州", "子", "塬",
];

/// Tails of "surname + 家 + tail + 村" village names (王家沟村).
pub(super) const VILLAGE_TAILS: [&str; 14] = [
    "沟", "庄", "河", "坪", "湾", "岭", "堡", "寨", "塬", "峁", "梁", "营", "店", "洼",
];

/// Common surnames and their rough frequency weights (tenths of a percent), Shaanxi-flavoured.
pub(super) const SURNAMES: [&str; 84] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "吴", "周", "孙", "徐", "朱", "胡", "马", "郭",
    "何", "林", "高", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯",
    "龙", "史", "党", "屈",
];
pub(super) const SURNAME_WEIGHTS: [u32; 84] = [
    71, 70, 67, 54, 45, 31, 23, 22, 20, 19, 15, 13, 13, 13, 12, 12, 12, 12, 11, 9, 9, 9, 8, 7, 7,
    7, 7, 6, 6, 6, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1,
];
pub(super) const GIVEN_MALE: [&str; 48] = [
    "伟", "强", "军", "磊", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫",
    "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "峰", "建", "国",
    "文", "志", "海", "兵", "东", "亮", "成", "生", "福", "贵", "德", "忠", "新", "民", "春", "安",
];
pub(super) const GIVEN_FEMALE: [&str; 36] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "英", "兰", "萍", "红", "梅",
    "琳", "燕", "芬", "莉", "婷", "雪", "慧", "洁", "颖", "琴", "云", "凤", "华", "倩", "玉", "珍",
    "月", "翠", "荣", "香",
];
/// Share of one-character given names.
pub(super) const SINGLE_GIVEN_SHARE: f64 = 0.25;

pub(super) fn place_name(rng: &mut ChaCha8Rng, suffix: &str) -> String {
    let mut s = String::with_capacity(12);
    s.push_str(PLACE_FIRST[rng.random_range(0..PLACE_FIRST.len() as u32) as usize]);
    s.push_str(PLACE_SECOND[rng.random_range(0..PLACE_SECOND.len() as u32) as usize]);
    s.push_str(suffix);
    s
}

/// A name from `make` that is not in `used` (falls back to a numbered name after many tries).
pub(super) fn unique_name(
    used: &mut HashSet<String>,
    rng: &mut ChaCha8Rng,
    mut make: impl FnMut(&mut ChaCha8Rng) -> String,
) -> String {
    for _ in 0..64 {
        let n = make(rng);
        if used.insert(n.clone()) {
            return n;
        }
    }
    // Practically unreachable (thousands of combinations for at most a few hundred names).
    let mut k = 2u32;
    let base = make(rng);
    loop {
        let n = format!("{base}{k}");
        if used.insert(n.clone()) {
            return n;
        }
        k += 1;
    }
}

pub(super) fn province_name(seed: u64, code: &str) -> String {
    PROVINCES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| place_name(&mut rng_for(seed, code, STREAM_NAME), "省"))
}

pub(super) fn real_city_name(code: &str) -> Option<&'static str> {
    SHAANXI_CITIES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

pub(super) fn county_name_maker(rng: &mut ChaCha8Rng) -> String {
    let suffix = if rng.random_bool(0.2) { "区" } else { "县" };
    place_name(rng, suffix)
}
