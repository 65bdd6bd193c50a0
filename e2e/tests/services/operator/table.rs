//! `kubectl get chatclusters`, as the API server serves it: the Table form
//! of the list (the CRD's printer columns, evaluated server-side), laid out
//! the way kubectl prints it.

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde_json::Value;

/// The rows of `kubectl get chatclusters -n <ns>`, header first, and the
/// same as text.
pub(crate) async fn get_chatclusters(
    client: &Client,
    ns: &str,
) -> Result<(Vec<Vec<String>>, String)> {
    let request = http::Request::get(format!(
        "/apis/confab.dev/v1alpha1/namespaces/{ns}/chatclusters"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())?;
    let table: Value = serde_json::from_str(&client.request_text(request).await?)?;
    let columns = table["columnDefinitions"]
        .as_array()
        .context("a Table has column definitions")?;
    let mut rows = vec![
        columns
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("?").to_uppercase())
            .collect::<Vec<_>>(),
    ];
    for row in table["rows"].as_array().context("a Table has rows")? {
        let cells = row["cells"].as_array().context("a row has cells")?;
        rows.push(
            cells
                .iter()
                .zip(columns)
                .map(|(cell, column)| render(cell, column))
                .collect(),
        );
    }
    let text = layout(&rows);
    Ok((rows, text))
}

/// A cell as kubectl shows it: dates as an age, absent values as `<none>`.
fn render(cell: &Value, column: &Value) -> String {
    match cell {
        Value::Null => "<none>".into(),
        Value::String(s) if column["format"] == "date-time" || column["type"] == "date" => {
            match s.parse::<Timestamp>() {
                Ok(t) => age(Timestamp::now().duration_since(t).as_secs()),
                Err(_) => s.clone(),
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// Columns left-aligned, three spaces apart.
fn layout(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            line.join("   ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
