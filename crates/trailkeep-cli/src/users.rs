//! `trailkeep users`: create and list the operator accounts that sign in at `/login`, through the running
//! service (a platform admin key).
//!
//! The password is never an argument — arguments show up in `ps` and shell history. It is read from a
//! prompt with echo off when standard input is a terminal, and otherwise from the first line of
//! standard input (`printf '%s\n' "$PW" | trailkeep users create --email …`).

use std::io::{BufRead, IsTerminal};

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};
use trailkeep_client::Method;

use crate::Remote;
use crate::term::cell;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create an operator account; the password is read from a prompt or standard input.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// The operator's email, which they sign in with.
        #[arg(long)]
        email: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List operator accounts (never their passwords).
    List {
        #[command(flatten)]
        remote: Remote,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn row(op: &Value) -> String {
    let text = |k: &str| op[k].as_str().unwrap_or("").to_owned();
    format!(
        "{:<36}  {:<32}  {:<24}  {}",
        cell(&text("id"), 36),
        cell(&text("email"), 32),
        cell(&text("name"), 24),
        text("created_at")
    )
}

/// The password, from a prompt (asked twice) or the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Password again: ").context("cannot read the password")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

/// The answer's JSON, or the service's error as an error.
fn answer(response: trailkeep_client::RawResponse) -> anyhow::Result<Value> {
    let body: Value = response.json().unwrap_or(Value::Null);
    if (200..300).contains(&response.status) {
        return Ok(body);
    }
    let error = &body["error"];
    anyhow::bail!(
        "{}: {}: {}",
        response.status,
        error["code"].as_str().unwrap_or("error"),
        error["message"].as_str().unwrap_or("the service refused the request")
    )
}

pub async fn run(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Create { remote, email, name } => {
            let client = remote.client()?;
            let password = read_password()?;
            let body = serde_json::to_vec(&json!({ "email": email, "name": name, "password": password }))?;
            let response =
                client.raw(Method::POST, "/v1/operators", Some(body), &[("content-type", "application/json")]).await?;
            let created = answer(response)?;
            println!("{}", row(&created));
        }
        UsersCommand::List { remote, json } => {
            let list = answer(remote.client()?.raw(Method::GET, "/v1/operators", None, &[]).await?)?;
            let data = list["data"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&data)?);
            } else {
                for op in &data {
                    println!("{}", row(op));
                }
            }
        }
    }
    Ok(())
}
