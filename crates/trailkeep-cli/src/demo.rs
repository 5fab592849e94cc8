//! `trailkeep demo` (and `serve --demo`): loads realistic demo data into a running service and says how
//! to look at it.

use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use trailkeep_client::Client;

use crate::Remote;
use crate::demo_data;

#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    remote: Remote,
    /// How many events to load.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Over how many days before now to spread them.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// The generator's seed: the same seed loads the same events.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    load(&client, args.events, args.days, args.seed, true).await?;
    print_guide(client.base_url());
    Ok(())
}

/// Loads the default demo when the first demo organisation has no events yet.
pub async fn load_if_empty(base_url: &str, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("admin.key");
    let key = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let client = Client::new(base_url, Some(key.trim().to_owned()))?;
    let first = &demo_data::demo_orgs()[0];
    let page = client.list_events(&[("organization_id", &first.id), ("limit", "1")]).await?;
    if !page.data.is_empty() {
        tracing::info!("demo data already loaded");
        return Ok(());
    }
    load(&client, 50_000, 90, 7, false).await?;
    print_guide(base_url);
    Ok(())
}

async fn load(client: &Client, count: usize, days: u32, seed: u64, progress: bool) -> anyhow::Result<()> {
    let now = trailkeep_server::now_ms();
    let bar = if progress { ProgressBar::new(count as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} loading demo events {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut batch = Vec::with_capacity(1000);
    for event in demo_data::events(seed, now, days, count) {
        batch.push(event);
        if batch.len() == 1000 {
            client.send_events(&batch).await.context("sending demo events")?;
            bar.inc(batch.len() as u64);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        client.send_events(&batch).await.context("sending demo events")?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    tracing::info!(count, "demo data loaded");
    Ok(())
}

fn print_guide(base: &str) {
    let orgs = demo_data::demo_orgs();
    println!("loaded demo data for {} organisations:", orgs.len());
    for org in &orgs {
        println!("  {:<24} {} ({} projects, {} members)", org.id, org.name, org.projects.len(), org.members.len());
    }
    let first = &orgs[0].id;
    println!();
    println!("look at it:");
    println!("  trailkeep search --org {first} 'action:api_key.*'");
    println!("  trailkeep search --org {first} 'category:ai cost:>0.01 -status:error'");
    println!(
        "  curl -H \"Authorization: Bearer $(cat trailkeep-data/admin.key)\" '{base}/v1/events?organization_id={first}&range=24h&limit=5'"
    );
}
