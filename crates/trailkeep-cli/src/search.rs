//! `trailkeep search`: the query language against one organisation, printed as a table, JSON or NDJSON.

use std::io::Write;

use clap::ValueEnum;
use trailkeep_core::time::format_millis;
use trailkeep_wire::Event;

use crate::Remote;
use crate::term::cell;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Ndjson,
}

#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    remote: Remote,
    /// The query, e.g. `action:api_key.* -outcome:success "rotated key"` (see docs/query-language.md).
    query: Vec<String>,
    /// The organisation (needed with a platform key).
    #[arg(long)]
    org: Option<String>,
    /// How many events to show; with --all, the page size.
    #[arg(long, default_value_t = 50)]
    limit: u16,
    /// Follow cursors to the end instead of stopping after one page.
    #[arg(long)]
    all: bool,
    /// Oldest first.
    #[arg(long)]
    asc: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn actor(e: &Event) -> String {
    e.actor.as_ref().and_then(|a| a.email.clone().or(a.name.clone()).or(a.id.clone())).unwrap_or_else(|| "N/A".into())
}

fn resource(e: &Event) -> String {
    e.primary_target().map(|t| format!("{}:{}", t.target_type, t.id)).unwrap_or_default()
}

pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let query = args.query.join(" ");
    let limit = args.limit.clamp(1, 1000).to_string();
    let mut params: Vec<(&str, &str)> = vec![("limit", &limit)];
    if !query.is_empty() {
        params.push(("q", &query));
    }
    if let Some(org) = &args.org {
        params.push(("organization_id", org));
    }
    if args.asc {
        params.push(("order", "asc"));
    }
    let events =
        if args.all { client.list_all_events(&params).await? } else { client.list_events(&params).await?.data };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &events)?;
            writeln!(out)?;
        }
        Format::Ndjson => {
            for e in &events {
                serde_json::to_writer(&mut out, e)?;
                writeln!(out)?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:<24}  {:>6}  {:<32}  {:<28}  {:<28}  {:<7}  DESCRIPTION",
                "OCCURRED", "SEQ", "ACTION", "ACTOR", "RESOURCE", "OUTCOME"
            )?;
            for e in &events {
                writeln!(
                    out,
                    "{:<24}  {:>6}  {:<32}  {:<28}  {:<28}  {:<7}  {}",
                    format_millis(e.occurred_at),
                    e.seq,
                    cell(e.action.as_str(), 32),
                    cell(&actor(e), 28),
                    cell(&resource(e), 28),
                    e.outcome.as_str(),
                    cell(e.description.as_deref().unwrap_or(""), 60),
                )?;
            }
            writeln!(out, "({} events)", events.len())?;
        }
    }
    Ok(())
}
