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

/// Prints the table as Markdown (it goes into the README as is).
pub fn print_table(sections: &[Section]) {
    let header = ["phase", "measure", "value", "target", "met"];
    let mut lines: Vec<[String; 5]> = vec![];
    for s in sections {
        for r in &s.rows {
            lines.push([
                s.name.to_string(),
                r.name.clone(),
                r.value.clone(),
                r.target.clone(),
                r.met.clone(),
            ]);
        }
    }
    let mut width = header.map(|h| h.chars().count());
    for l in &lines {
        for (w, cell) in width.iter_mut().zip(l) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fmt = |cells: &[String; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!("{}", fmt(&header.map(String::from)));
    println!("{}", fmt(&width.map(|w| "-".repeat(w))));
    for l in &lines {
        println!("{}", fmt(l));
    }
}

/// Writes every figure to `path` as JSON.
pub fn write_json(path: &Path, meta: Value, sections: &[Section]) -> anyhow::Result<()> {
    let mut figures = serde_json::Map::new();
    for s in sections {
        let rows: Vec<Value> = s
            .rows
            .iter()
            .map(|r| json!({"measure": r.name, "value": r.value, "target": r.target, "met": r.met}))
            .collect();
        figures.insert(s.name.to_string(), json!({"figures": s.json, "rows": rows}));
    }
    let doc = json!({"run": meta, "phases": figures});
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}
