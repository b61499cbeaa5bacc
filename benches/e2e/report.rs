//! The output: one table on stdout and the same figures as JSON.

use std::path::Path;

use serde_json::{json, Value};

/// A figure's target, if it has one.
pub enum Target {
    None,
    /// `(measured, limit, how the target reads)`.
    AtLeast(f64, f64, &'static str),
    AtMost(f64, f64, &'static str),
    /// Met or not, by a rule the caller applied.
    Met(bool, &'static str),
}

pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
    /// `yes`, `NO`, or empty when there is no target.
    pub met: String,
}

/// One phase's rows and raw figures.
pub struct Section {
    pub name: &'static str,
    pub rows: Vec<Row>,
    pub json: Value,
}

impl Section {
    pub fn new(name: &'static str) -> Self {
        Section {
            name,
            rows: vec![],
            json: Value::Null,
        }
    }

    pub fn row(&mut self, name: impl Into<String>, value: impl Into<String>, target: Target) {
        let verdict = |ok: bool| if ok { "yes" } else { "NO" }.to_string();
        let (target, met) = match target {
            Target::None => (String::new(), String::new()),
            Target::AtLeast(v, limit, how) => (how.to_string(), verdict(v >= limit)),
            Target::AtMost(v, limit, how) => (how.to_string(), verdict(v <= limit)),
            Target::Met(ok, how) => (how.to_string(), verdict(ok)),
        };
        self.rows.push(Row {
            name: name.into(),
            value: value.into(),
            target,
            met,
        });
    }
}

/// One server's sections: a column of the table.
pub struct Column {
    /// `nats-server --version`'s answer.
    pub server: String,
    pub sections: Vec<Section>,
}

/// Prints the table as Markdown (it goes into the README as is): one value
/// column per server, rows matched by phase and measure, a target's verdict
/// per server (`yes / NO`).
pub fn print_table(columns: &[Column]) {
    let short = |c: &Column| c.server.trim_start_matches("nats-server: ").to_string();
    let mut header = vec!["phase".to_string(), "measure".to_string()];
    header.extend(columns.iter().map(short));
    header.extend(["target".to_string(), "met".to_string()]);
    // Rows in the order they first appear, across every column; a measure
    // whose name carries a figure (`at a steady 999 reports/s`) matches
    // the same measure with another figure.
    let mut keys: Vec<(&str, &str)> = vec![];
    for c in columns {
        for s in &c.sections {
            for r in &s.rows {
                if !keys
                    .iter()
                    .any(|k| k.0 == s.name && same_measure(k.1, &r.name))
                {
                    keys.push((s.name, r.name.as_str()));
                }
            }
        }
    }
    fn find<'c>(c: &'c Column, (phase, measure): (&str, &str)) -> Option<&'c Row> {
        c.sections
            .iter()
            .filter(|s| s.name == phase)
            .flat_map(|s| &s.rows)
            .find(|r| same_measure(&r.name, measure))
    }
    let mut lines: Vec<Vec<String>> = vec![];
    for key in keys {
        let rows: Vec<Option<&Row>> = columns.iter().map(|c| find(c, key)).collect();
        let mut line = vec![key.0.to_string(), key.1.to_string()];
        line.extend(
            rows.iter()
                .map(|r| r.map_or("–".into(), |r| r.value.clone())),
        );
        line.push(
            rows.iter()
                .flatten()
                .map(|r| r.target.clone())
                .next()
                .unwrap_or_default(),
        );
        let verdicts: Vec<String> = rows
            .iter()
            .map(|r| r.map_or(String::new(), |r| r.met.clone()))
            .collect();
        let met = if verdicts.iter().all(|v| v.is_empty()) {
            String::new()
        } else {
            verdicts.join(" / ")
        };
        line.push(met);
        lines.push(line);
    }
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for l in &lines {
        for (w, cell) in width.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fmt = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!("{}", fmt(&header));
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    println!("{}", fmt(&rule));
    for l in &lines {
        println!("{}", fmt(l));
    }
}

/// Two measure names equal but for their digits.
fn same_measure(a: &str, b: &str) -> bool {
    let shape = |s: &str| -> String { s.chars().filter(|c| !c.is_ascii_digit()).collect() };
    shape(a) == shape(b)
}

/// Writes every figure to `path` as JSON: `phases` for the first server (the
/// shape of single-server runs), and `servers`, one entry per server.
pub fn write_json(path: &Path, meta: Value, columns: &[Column]) -> anyhow::Result<()> {
    let phases = |sections: &[Section]| {
        let mut figures = serde_json::Map::new();
        for s in sections {
            let rows: Vec<Value> = s
                .rows
                .iter()
                .map(|r| json!({"measure": r.name, "value": r.value, "target": r.target, "met": r.met}))
                .collect();
            figures.insert(s.name.to_string(), json!({"figures": s.json, "rows": rows}));
        }
        Value::Object(figures)
    };
    let servers: Vec<Value> = columns
        .iter()
        .map(|c| json!({"nats_server": c.server, "phases": phases(&c.sections)}))
        .collect();
    let first = columns.first().map_or(Value::Null, |c| phases(&c.sections));
    let doc = json!({"run": meta, "phases": first, "servers": servers});
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}
