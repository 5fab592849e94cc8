//! `trailkeep send`: events from a file or stdin, as a JSON array, `{"events": [...]}`, one object, or
//! NDJSON, sent in batches with a progress bar.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::Remote;

#[derive(clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    remote: Remote,
    /// The file to read; `-` reads stdin.
    file: PathBuf,
    /// Events per request (1-1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch: u16,
    /// Fill in `organization_id` for events that leave it out.
    #[arg(long)]
    org: Option<String>,
}

/// Reads events in any of the accepted layouts.
pub fn parse_events(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        bail!("the input holds no events");
    }
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).context("the input starts with `[` but is not a JSON array of events");
    }
    // One JSON document (an event or a batch), else one event per line.
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return match value {
            Value::Object(mut o) if o.len() == 1 && o.contains_key("events") => match o.remove("events") {
                Some(Value::Array(a)) => Ok(a),
                _ => bail!("`events` must be an array"),
            },
            v @ Value::Object(_) => Ok(vec![v]),
            _ => bail!("the input must hold event objects"),
        };
    }
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).with_context(|| format!("line {} is not a JSON object", i + 1))?;
        events.push(value);
    }
    Ok(events)
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let mut events = parse_events(&text)?;
    if let Some(org) = &args.org {
        for e in &mut events {
            if let Value::Object(o) = e {
                o.entry("organization_id").or_insert_with(|| Value::String(org.clone()));
            }
        }
    }
    let bar = ProgressBar::new(events.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} sending {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut sent = 0usize;
    for chunk in events.chunks(usize::from(args.batch)) {
        if let Err(e) = client.send_events(chunk).await {
            bar.abandon();
            let hint = if sent > 0 {
                format!("; the {sent} events before it were stored: resend from event {} on", sent + 1)
            } else {
                String::new()
            };
            bail!("the batch starting at event {} was refused: {e}{hint}", sent + 1);
        }
        sent += chunk.len();
        bar.set_position(sent as u64);
    }
    bar.finish_and_clear();
    println!("sent {sent} events");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_layout_is_read() {
        assert_eq!(parse_events(r#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(parse_events(r#"{"events":[{"a":1}]}"#).unwrap().len(), 1);
        assert_eq!(parse_events(r#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(parse_events("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
        assert!(parse_events("{\"a\":1}\nnot json\n").unwrap_err().to_string().contains("line 2"));
        assert!(parse_events("  ").is_err());
    }
}
