//! Seeded random PromQL over the data of `data.rs`: functions, aggregations, matchers,
//! offsets, `@`, subqueries and binary operators, as instant queries at several times and as
//! range queries.
//!
//! Time rules (why they matter: `exclusions.rs`): every evaluation time is a whole second
//! ≡ 2 (mod 5 s) after the data start (a whole minute); every duration, offset, `@` time
//! shift and step is a multiple of 5 s, except the ranges of subqueries nested in another
//! subquery, which are ≡ 2 (mod 5 s) because their evaluation times are multiples of the
//! outer step. So no range boundary, lookback boundary or subquery step ever coincides with a
//! sample, nor a subquery step with its range's left edge.
//!
//! The generator also keeps clear of constructs whose results Prometheus leaves unspecified
//! or changed between 2.x and 3.x, or that turn last-bit float differences into big ones:
//! topk/bottomk only at the top level, label_replace/label_join only in injective forms,
//! group_left only against a side unique per (job, instance), stddev/stdvar only over finite
//! inputs, rate()/increase() only over counters or sums/maxima of counters, `@` on range
//! selectors only outside range evaluation, no changes() over subqueries, no `%` between
//! vectors, no negative factors.

use super::data::{INTERVAL_MS, ROUNDS};
use super::prng::Rng;

#[derive(Debug, Clone)]
pub enum When {
    Instant { time_s: i64 },
    Range { start_s: i64, end_s: i64, step_s: i64 },
}

#[derive(Debug, Clone)]
pub struct Query {
    pub expr: String,
    pub when: When,
}

impl Query {
    /// Result order is part of the answer only for a top-level sort in an instant query
    /// (range query results are always sorted by labels).
    pub fn ordered(&self) -> bool {
        matches!(self.when, When::Instant { .. })
            && (self.expr.starts_with("sort(") || self.expr.starts_with("sort_desc("))
    }

    pub fn describe(&self) -> String {
        match self.when {
            When::Instant { time_s } => format!("instant at {time_s}: {}", self.expr),
            When::Range { start_s, end_s, step_s } => format!("range {start_s}..{end_s} step {step_s}s: {}", self.expr),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
}

struct Family {
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family { name: "http_requests_total", kind: Kind::Counter, labels: &["job", "instance", "method", "code"] },
    Family { name: "process_cpu_seconds_total", kind: Kind::Counter, labels: &["job", "instance"] },
    Family {
        name: "request_duration_seconds_bucket",
        kind: Kind::Counter,
        labels: &["job", "instance", "method", "le"],
    },
    Family { name: "request_duration_seconds_sum", kind: Kind::Counter, labels: &["job", "instance", "method"] },
    Family { name: "request_duration_seconds_count", kind: Kind::Counter, labels: &["job", "instance", "method"] },
    Family { name: "memory_usage_bytes", kind: Kind::Gauge, labels: &["job", "instance"] },
    Family { name: "temperature_celsius", kind: Kind::Gauge, labels: &["job", "instance", "sensor"] },
    Family { name: "queue_depth", kind: Kind::Gauge, labels: &["job", "instance", "method"] },
    Family { name: "up", kind: Kind::Gauge, labels: &["job", "instance"] },
];

const RANGES: &[&str] = &["30s", "1m", "2m", "5m", "5m", "10m", "15m", "30m", "1h"];
const OFFSETS: &[&str] = &["30s", "1m", "5m", "10m", "-1m", "-5m"];
const SUB_RANGES: &[&str] = &["5m", "10m", "15m", "30m"];
/// Subquery ranges inside another subquery, whose evaluation times are multiples of its step
/// (≡ 0 mod 5 s): ≡ 2 (mod 5 s), so that the inner left edge again misses every inner step.
const NESTED_SUB_RANGES: &[&str] = &["5m2s", "10m2s", "15m2s"];
const SUB_STEPS: &[&str] = &["5s", "15s", "30s", "1m", "2m"];
const RANGE_STEPS: &[i64] = &[15, 20, 30, 60];

fn matchers_for(label: &str) -> &'static [&'static str] {
    match label {
        "job" => &[r#"job="api""#, r#"job!="web""#, r#"job=~"api|web""#, r#"job!~"a.*""#, r#"job=~"w.+""#],
        "instance" => &[
            r#"instance=~"host-[0-2]:9100""#,
            r#"instance!="host-4:9100""#,
            r#"instance="host-5:9100""#,
            r#"instance!~".*-1:.*""#,
        ],
        "method" => &[r#"method="GET""#, r#"method=~"GET|POST""#, r#"method!="PUT""#, r#"method!~"P.*""#],
        "code" => &[r#"code=~"5..""#, r#"code!="200""#, r#"code="404""#, r#"code=~"2.*|5.*""#],
        "sensor" => &[r#"sensor="a""#, r#"sensor!="b""#],
        "le" => &[r#"le!="+Inf""#, r#"le="1""#, r#"le=~"0[.].*""#],
        _ => &[r#"env="""#, r#"env=~"prod|""#, r#"env!="""#],
    }
}

/// An instant-vector expression and what the generator knows about it.
struct Expr {
    text: String,
    /// Whether it can produce ±Inf (stddev/stdvar of infinities changed in 3.0) or values
    /// whose spread is tiny next to their size (timestamps), where a variance is so
    /// ill-conditioned that summation order shows in the 8th digit.
    wild: bool,
}

impl Expr {
    fn new(text: String, wild: bool) -> Expr {
        Expr { text, wild }
    }
}

pub struct Generator {
    rng: Rng,
    start_s: i64,
    range_query: bool,
    /// How many subqueries enclose the expression being generated.
    subquery_depth: u32,
}

/// `count` queries from `seed` over data starting at `start_s` (a whole minute).
pub fn generate(seed: u64, start_s: i64, count: usize) -> Vec<Query> {
    let mut g = Generator { rng: Rng::new(seed), start_s, range_query: false, subquery_depth: 0 };
    (0..count).map(|_| g.query()).collect()
}

impl Generator {
    fn query(&mut self) -> Query {
        let data_end_s = self.start_s + ROUNDS * INTERVAL_MS / 1000;
        self.range_query = self.rng.chance(0.45);
        let when = if self.range_query {
            let step_s = *self.rng.pick(RANGE_STEPS);
            let start_s = self.aligned_time(self.start_s - 300, data_end_s + 100);
            let points = self.rng.range(5, 30);
            When::Range { start_s, end_s: start_s + step_s * (points - 1), step_s }
        } else {
            // Early (ranges reach before the data), the gap, the staleness window, the end of
            // the data and 5 min after it (lookback expiry), or anywhere.
            let offsets = [17, 1202, 1502, 1727, 2257, 2402, 2707, 3602, 3902];
            let time_s = if self.rng.chance(0.7) {
                self.start_s + *self.rng.pick(&offsets)
            } else {
                self.aligned_time(self.start_s, data_end_s + 300)
            };
            When::Instant { time_s }
        };
        let expr = self.top();
        Query { expr, when }
    }

    /// A whole second ≡ 2 (mod 5) after the data start, within `[lo, hi]`.
    fn aligned_time(&mut self, lo: i64, hi: i64) -> i64 {
        let k = self.rng.range((lo - self.start_s) / 5, (hi - self.start_s) / 5);
        self.start_s + 5 * k + 2
    }

    fn top(&mut self) -> String {
        match self.rng.below(100) {
            0..=5 => {
                let depth = self.rng.range(1, 3) as u32;
                self.ranking(depth, true).text
            }
            6..=79 => {
                let depth = self.rng.range(1, 3) as u32;
                self.vector(depth).text
            }
            80..=86 => {
                let f = if self.rng.chance(0.5) { "sort" } else { "sort_desc" };
                format!("{f}({})", self.vector(2).text)
            }
            87..=91 => self.scalar_query(),
            92..=94 => {
                let fam = self.family();
                format!("{}[{}]", self.selector(fam), self.rng.pick(&["1m", "2m", "5m"]))
            }
            95..=96 => r#""a string literal""#.to_string(),
            _ => self.invalid(),
        }
    }

    fn family(&mut self) -> &'static Family {
        self.rng.pick(FAMILIES)
    }

    fn family_of(&mut self, kind: Kind) -> &'static Family {
        loop {
            let f = self.family();
            if f.kind == kind {
                return f;
            }
        }
    }

    fn selector(&mut self, fam: &Family) -> String {
        let mut matchers: Vec<&str> = Vec::new();
        for _ in 0..self.rng.below(3) {
            let label = if self.rng.chance(0.05) { "env" } else { *self.rng.pick(fam.labels) };
            let m = *self.rng.pick(matchers_for(label));
            if !matchers.contains(&m) {
                matchers.push(m);
            }
        }
        if self.rng.chance(0.05) {
            matchers.insert(0, "");
            format!("{{__name__=\"{}\"{}}}", fam.name, matchers.join(", "))
        } else if matchers.is_empty() {
            fam.name.to_string()
        } else {
            format!("{}{{{}}}", fam.name, matchers.join(", "))
        }
    }

    /// An offset and/or `@` modifier, or nothing.
    fn modifiers(&mut self, instant_selector: bool) -> String {
        let mut m = String::new();
        if self.rng.chance(0.15) {
            m.push_str(&format!(" offset {}", self.rng.pick(OFFSETS)));
        }
        if self.rng.chance(0.07) {
            // A range selector fixed with `@` but evaluated over a range (a range query or a
            // subquery) slid with the steps in 2.x (fixed in 2.51, #13559).
            let ranged = self.range_query || self.subquery_depth > 0;
            if instant_selector && self.range_query {
                m.push_str(if self.rng.chance(0.5) { " @ start()" } else { " @ end()" });
            } else if instant_selector || !ranged {
                let t = self.aligned_time(self.start_s + 600, self.start_s + 3600);
                m.push_str(&format!(" @ {t}"));
            }
        }
        m
    }

    fn range_selector(&mut self, fam: &Family) -> String {
        let sel = self.selector(fam);
        let range = self.rng.pick(RANGES);
        format!("{sel}[{range}]{}", self.modifiers(false))
    }

    /// A selector or a range function over one family; keeps the family's labels.
    fn leaf(&mut self, fam: &'static Family) -> Expr {
        if self.rng.chance(0.3) {
            let sel = self.selector(fam);
            return Expr::new(format!("{sel}{}", self.modifiers(true)), false);
        }
        let rs = self.range_selector(fam);
        let over_time = ["avg", "min", "max", "sum", "count", "stddev", "stdvar", "last", "present"];
        let text = match (fam.kind, self.rng.below(10)) {
            (Kind::Counter, 0..=3) => format!("rate({rs})"),
            (Kind::Counter, 4) => format!("irate({rs})"),
            (Kind::Counter, 5..=6) => format!("increase({rs})"),
            (Kind::Counter, 7) => format!("resets({rs})"),
            (Kind::Gauge, 0) => format!("delta({rs})"),
            (Kind::Gauge, 1) => format!("idelta({rs})"),
            (Kind::Gauge, 2) => format!("deriv({rs})"),
            (Kind::Gauge, 3) => format!("predict_linear({rs}, {})", self.rng.pick(&["60", "300", "-120", "3600"])),
            (_, 8) => format!("changes({rs})"),
            (_, 9) if self.rng.chance(0.3) => {
                format!("quantile_over_time({}, {rs})", self.rng.pick(&["0", "0.25", "0.5", "0.9", "1"]))
            }
            _ => format!("{}_over_time({rs})", self.rng.pick(&over_time)),
        };
        Expr::new(text, false)
    }

    /// An expression with exactly the labels of `fam` (maybe without `__name__`).
    fn fam_expr(&mut self, fam: &'static Family, depth: u32) -> Expr {
        if depth == 0 || self.rng.chance(0.45) {
            return self.leaf(fam);
        }
        match self.rng.below(10) {
            0..=3 => {
                let e = self.fam_expr(fam, depth - 1);
                self.math(e)
            }
            4..=5 => {
                let (a, b) = (self.fam_expr(fam, depth - 1), self.fam_expr(fam, depth - 1));
                self.binary_one_to_one(a, b)
            }
            6 => {
                let e = self.fam_expr(fam, depth - 1);
                let op = self.rng.pick(&[">", "<", ">=", "<=", "==", "!="]);
                let s = self.rng.pick(&["0", "1", "10", "0.5", "-2", "1000"]);
                if self.rng.chance(0.5) {
                    Expr::new(format!("({} {op} {s})", e.text), e.wild)
                } else {
                    Expr::new(format!("({s} {op} {})", e.text), e.wild)
                }
            }
            7 => {
                let (a, b) = (self.fam_expr(fam, depth - 1), self.fam_expr(fam, depth - 1));
                let op = self.rng.pick(&["and", "or", "unless"]);
                Expr::new(format!("({} {op} {})", a.text, b.text), a.wild || b.wild)
            }
            _ => self.subquery(Some(fam), depth - 1),
        }
    }

    fn math(&mut self, e: Expr) -> Expr {
        let x = &e.text;
        let (text, inf) = match self.rng.below(24) {
            0 => (format!("abs({x})"), false),
            1 => (format!("ceil({x})"), false),
            2 => (format!("floor({x})"), false),
            3 => (format!("round({x})"), false),
            4 => (format!("round({x}, {})", self.rng.pick(&["0.5", "5", "0.1"])), false),
            5 => (format!("sqrt({x})"), false),
            6 => (format!("exp({x})"), true),
            7 => (format!("ln({x})"), true),
            8 => (format!("log2({x})"), true),
            9 => (format!("log10({x})"), true),
            10 => (format!("sgn({x})"), false),
            11 => (format!("clamp({x}, -5, {})", self.rng.pick(&["5", "100", "-10"])), false),
            12 => (format!("clamp_min({x}, {})", self.rng.pick(&["0", "3.5"])), false),
            13 => (format!("clamp_max({x}, {})", self.rng.pick(&["0", "1000"])), false),
            14 => (format!("-({x})"), false),
            // sin and cos of huge values amplify the last-bit differences of summation.
            20 if !e.wild => (format!("{}({x})", self.rng.pick(&["sin", "cos", "atan", "tanh"])), false),
            21 => (format!("{}({x})", self.rng.pick(&["deg", "rad", "asinh"])), false),
            // Date functions convert the value to an integer of seconds; infinities have no
            // defined conversion.
            22 if !e.wild => {
                let f = self.rng.pick(&["minute", "hour", "day_of_week", "day_of_month", "month", "year"]);
                (format!("{f}({x})"), false)
            }
            23 => (format!("{}(timestamp({x}))", self.rng.pick(&["minute", "hour", "day_of_week"])), false),
            // No negative factors: a -0 summed is -0 in 2.x and +0 in 3.x (Kahan), which flips
            // the sign of a later division by it.
            15 => (format!("({x} * {})", self.rng.pick(&["2", "0.5", "1e3"])), false),
            16 => (format!("({x} / {})", self.rng.pick(&["10", "0", "4"])), true),
            17 => (format!("({x} % {})", self.rng.pick(&["7", "0.5"])), false),
            18 => (format!("({x} ^ 2)"), true),
            _ => (format!("(100 - {x})"), false),
        };
        Expr::new(text, e.wild || inf)
    }

    /// `a op b` for two expressions with the same labels.
    fn binary_one_to_one(&mut self, a: Expr, b: Expr) -> Expr {
        // No `%` between two vectors: near a multiple of the divisor it turns 2.x's last-bit
        // averaging differences into differences of the whole divisor.
        let (op, inf) = match self.rng.below(13) {
            11 => ("atan2", false),
            12 | 4 => ("^", true),
            0 => ("+", false),
            1 => ("-", false),
            2 => ("*", false),
            3 => ("/", true),
            5 => (">", false),
            6 => ("<=", false),
            7 => ("== bool", false),
            8 => ("> bool", false),
            9 => ("!=", false),
            _ => ("<", false),
        };
        Expr::new(format!("({} {op} {})", a.text, b.text), a.wild || b.wild || inf)
    }

    fn vector(&mut self, depth: u32) -> Expr {
        if depth == 0 {
            let fam = self.family();
            return self.leaf(fam);
        }
        match self.rng.below(100) {
            0..=24 => {
                let fam = self.family();
                self.fam_expr(fam, depth)
            }
            25..=44 => self.aggregation(depth),
            45..=49 => self.histogram_quantile(),
            50..=55 => self.ranking(depth, false),
            56..=59 => self.label_replace(depth),
            60..=65 => self.grouped_binary(depth),
            66..=71 => self.group_left(depth),
            72..=76 => {
                let (a, b) = (self.vector(depth - 1), self.vector(depth - 1));
                let op = self.rng.pick(&["and", "or", "unless"]);
                let on = self.rng.pick(&["", " on(job)", " ignoring(instance)", " on(job, instance)", " on()"]);
                Expr::new(format!("({} {op}{on} {})", a.text, b.text), a.wild || b.wild)
            }
            77..=85 => self.subquery(None, depth - 1),
            86..=88 => {
                let fam = self.family();
                Expr::new(format!("timestamp({}{})", self.selector(fam), self.modifiers(true)), true)
            }
            89..=91 => self.absent(),
            92..=95 => {
                let s = self.scalar(depth - 1);
                Expr::new(format!("vector({s})"), true)
            }
            _ => {
                let e = self.vector(depth - 1);
                let s = self.scalar(depth - 1);
                let op = self.rng.pick(&["+", "*", "-", ">", "< bool", "/"]);
                if self.rng.chance(0.5) {
                    Expr::new(format!("({} {op} {s})", e.text), true)
                } else {
                    Expr::new(format!("({s} {op} {})", e.text), true)
                }
            }
        }
    }

    fn grouping(&mut self) -> String {
        let pool = ["job", "instance", "method", "code", "le", "sensor", "env"];
        let mut labels: Vec<&str> = Vec::new();
        for _ in 0..self.rng.range(0, 2) {
            let l = *self.rng.pick(&pool);
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        let kw = if self.rng.chance(0.75) { "by" } else { "without" };
        format!("{kw} ({})", labels.join(", "))
    }

    fn aggregation(&mut self, depth: u32) -> Expr {
        let inner = self.vector(depth - 1);
        let mut ops = vec!["sum", "avg", "min", "max", "count", "group"];
        if !inner.wild {
            ops.extend(["stddev", "stdvar"]);
        }
        let op = *self.rng.pick(&ops);
        let grouping = if self.rng.chance(0.7) { self.grouping() } else { String::new() };
        let text = if grouping.is_empty() {
            format!("{op}({})", inner.text)
        } else if self.rng.chance(0.8) {
            format!("{op} {grouping} ({})", inner.text)
        } else {
            format!("{op}({}) {grouping}", inner.text)
        };
        Expr::new(text, inner.wild)
    }

    /// quantile and count_values anywhere; topk and bottomk only at the top level, where a tie
    /// broken another way changes labels but not values (which `compare` recognises): below
    /// another operator a different pick would change values.
    fn ranking(&mut self, depth: u32, top_level: bool) -> Expr {
        let inner = self.vector(depth - 1);
        let grouping = if self.rng.chance(0.5) { format!(" {}", self.grouping()) } else { String::new() };
        let text = match self.rng.below(if top_level { 4 } else { 2 }) {
            // count_values over rounded values, so the number of output series stays small, and
            // never over huge ones, whose last-bit differences would show in the labels.
            1 if !inner.wild => format!("count_values{grouping}(\"value\", round({}))", inner.text),
            2 => format!("topk{grouping}({}, {})", self.rng.pick(&["1", "3", "5"]), inner.text),
            3 => format!("bottomk{grouping}({}, {})", self.rng.pick(&["1", "2", "4"]), inner.text),
            _ => format!("quantile{grouping}({}, {})", self.rng.pick(&["0.5", "0.9", "0", "1", "0.25"]), inner.text),
        };
        Expr::new(text, inner.wild)
    }

    fn histogram_quantile(&mut self) -> Expr {
        let q = self.rng.pick(&["0.5", "0.9", "0.99", "0.1", "0", "1"]);
        let range = self.rng.pick(&["1m", "2m", "5m", "10m", "30m"]);
        let fam = &FAMILIES[2];
        let sel = self.selector(fam);
        let by = self.rng.pick(&["le", "le, job", "le, method", "job, le, instance"]);
        let text = match self.rng.below(4) {
            0 => format!("histogram_quantile({q}, rate({sel}[{range}]))"),
            1 => format!("histogram_quantile({q}, sum by ({by}) (rate({sel}[{range}])))"),
            2 => format!("histogram_quantile({q}, sum by ({by}) (increase({sel}[{range}]{})))", self.modifiers(false)),
            _ => format!("histogram_quantile({q}, {sel})"),
        };
        Expr::new(text, false)
    }

    fn label_replace(&mut self, depth: u32) -> Expr {
        let inner = self.vector(depth - 1);
        let text = match self.rng.below(4) {
            3 => format!(r#"label_join({}, "target", "/", "job", "instance")"#, inner.text),
            0 => format!(r#"label_replace({}, "host", "$1", "instance", "(.+):\\d+")"#, inner.text),
            1 => format!(r#"label_replace({}, "instance", "$1", "instance", "(.*):9100")"#, inner.text),
            _ => format!(r#"label_replace({}, "job", "prod-$1", "job", "(.*)")"#, inner.text),
        };
        Expr::new(text, inner.wild)
    }

    /// Two aggregations grouped the same way, combined one-to-one.
    fn grouped_binary(&mut self, depth: u32) -> Expr {
        let labels = self.rng.pick(&["job", "job, instance", "instance", "method", ""]);
        let (a, b) = (self.vector(depth - 1), self.vector(depth - 1));
        let (oa, ob) = (self.rng.pick(&["sum", "max", "avg", "count"]), self.rng.pick(&["sum", "min", "avg", "count"]));
        let a = Expr::new(format!("{oa} by ({labels}) ({})", a.text), a.wild);
        let b = Expr::new(format!("{ob} by ({labels}) ({})", b.text), b.wild);
        self.binary_one_to_one(a, b)
    }

    /// Many-to-one matching against a side that is unique per (job, instance).
    fn group_left(&mut self, depth: u32) -> Expr {
        let fam = self.family();
        let many = self.fam_expr(fam, depth - 1);
        let one = match self.rng.below(5) {
            0 => "up".to_string(),
            1 => "memory_usage_bytes".to_string(),
            2 => "rate(process_cpu_seconds_total[5m])".to_string(),
            3 => format!("sum by (job, instance) ({})", self.vector(depth - 1).text),
            _ => "build_info".to_string(),
        };
        let copy = if one == "build_info" && self.rng.chance(0.7) { "(version)" } else { "()" };
        let matching =
            if self.rng.chance(0.7) { " on(job, instance)" } else { " ignoring(method, code, le, sensor, version)" };
        let op = self.rng.pick(&["*", "/", "+", ">", "< bool"]);
        let text = if self.rng.chance(0.8) {
            format!("({} {op}{matching} group_left{copy} {one})", many.text)
        } else {
            format!("({one} {op}{matching} group_right{copy} {})", many.text)
        };
        Expr::new(text, true)
    }

    fn subquery(&mut self, fam: Option<&'static Family>, depth: u32) -> Expr {
        let range = self.rng.pick(if self.subquery_depth == 0 { SUB_RANGES } else { NESTED_SUB_RANGES });
        let step = self.rng.pick(SUB_STEPS);
        let offset = if self.rng.chance(0.15) { format!(" offset {}", self.rng.pick(OFFSETS)) } else { String::new() };
        if fam.is_none() && self.rng.chance(0.25) {
            // rate() and increase() over sums or maxima of counters: counter-like and large.
            let c = self.family_of(Kind::Counter);
            let agg = self.rng.pick(&["sum", "max", "sum by (job)", "max by (instance)"]);
            let f = self.rng.pick(&["rate", "increase", "irate", "resets"]);
            return Expr::new(format!("{f}(({agg} ({}))[{range}:{step}]{offset})", self.selector(c)), false);
        }
        self.subquery_depth += 1;
        let inner = match fam {
            Some(f) => self.fam_expr(f, depth),
            None => self.vector(depth),
        };
        self.subquery_depth -= 1;
        let mut fns = vec![
            "max_over_time",
            "min_over_time",
            "avg_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
        ];
        // No changes() over subqueries: it counts the last-bit differences of 2.x's incremental
        // mean against 3.x's Kahan sums as changes.
        fns.extend(["delta", "deriv", "present_over_time"]);
        if !inner.wild {
            fns.extend(["stddev_over_time", "stdvar_over_time"]);
        }
        let f = *self.rng.pick(&fns);
        Expr::new(format!("{f}(({})[{range}:{step}]{offset})", inner.text), inner.wild)
    }

    fn absent(&mut self) -> Expr {
        let text = match self.rng.below(4) {
            0 => r#"absent(nonexistent_metric{job="api", instance="x"})"#.to_string(),
            1 => format!("absent({})", self.selector(&FAMILIES[8])),
            2 => format!("absent_over_time({})", self.range_selector(&FAMILIES[7])),
            _ => r#"absent_over_time(nonexistent_metric{job=~"a.*", code="1"}[5m])"#.to_string(),
        };
        Expr::new(text, false)
    }

    fn scalar(&mut self, depth: u32) -> String {
        match self.rng.below(6) {
            0 | 1 => self.rng.pick(&["2", "0.5", "-1", "100", "1e3", "0"]).to_string(),
            2 => "time()".to_string(),
            3 => format!("scalar(sum({}))", self.vector(depth).text),
            4 => format!("scalar({})", self.vector(depth).text),
            _ => format!("scalar(count({}))", self.vector(depth).text),
        }
    }

    fn scalar_query(&mut self) -> String {
        match self.rng.below(5) {
            0 => format!("{} * 2", self.scalar(1)),
            1 => "time() - 300".to_string(),
            2 => format!("{} > bool 10", self.scalar(1)),
            3 => "(1 + 2) * 3 / 4 % 5 ^ 2".to_string(),
            _ => self.scalar(2),
        }
    }

    fn invalid(&mut self) -> String {
        let cases = [
            "rate(http_requests_total)",
            "sum(up[5m])",
            "up +",
            "histogram_quantile(0.9)",
            "http_requests_total + on(job) http_requests_total",
            "up{job=~\"(\"}",
            "label_replace(up, \"dst\", \"x\", \"job\", \"[\")",
            "clamp(up)",
            "absent(up[5m])",
            "nonexistent_function(up)",
            "up[5m:1m:1m]",
            "topk(up, 3)",
            "sum by (job) (up) * on(job) group_left sum by (job, instance) (up)",
        ];
        self.rng.pick(&cases).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_deterministic_and_times_avoid_boundaries() {
        let start_s = 1_800_000_000; // a whole minute
        let a = generate(3, start_s, 300);
        let b = generate(3, start_s, 300);
        assert_eq!(
            a.iter().map(|q| q.describe()).collect::<Vec<_>>(),
            b.iter().map(|q| q.describe()).collect::<Vec<_>>()
        );
        for q in &a {
            let times = match q.when {
                When::Instant { time_s } => vec![time_s],
                When::Range { start_s: s, end_s: e, step_s } => {
                    assert_eq!(step_s % 5, 0);
                    vec![s, e]
                }
            };
            assert!(times.iter().all(|t| (t - start_s).rem_euclid(5) == 2), "{}", q.describe());
        }
    }
}
