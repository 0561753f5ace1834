//! Command-line definitions (clap only). No subcommand runs the server.

use clap::{Parser, Subcommand};

/// The `--help` footer: every environment variable with its default.
pub fn env_help() -> String {
    let mut s =
        String::from("Configuration is read from the environment and an optional .env file:\n\n");
    for (name, default, meaning) in gpt_load_common::config::ENV_HELP {
        s.push_str(&format!("  {name:<34} {meaning} [default: {default}]\n"));
    }
    s
}

#[derive(Debug, Parser)]
#[command(name = "gpt-load", version, about = "A fast, transparent proxy for AI APIs with key pools, rotation and failover", after_help = env_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Re-encrypt stored upstream keys: `--to NEW` enables encryption, `--from OLD` disables it,
    /// both rotate the key. Stop the server first; set DATABASE_DSN as for the server.
    MigrateKeys {
        /// The current ENCRYPTION_KEY (omit when keys are stored unencrypted).
        #[arg(long)]
        from: Option<String>,
        /// The new ENCRYPTION_KEY (omit to store keys unencrypted).
        #[arg(long)]
        to: Option<String>,
    },
    /// Operate a running cluster over gRPC (status, groups, key import, validation).
    Ctl(CtlArgs),
}

/// `gpt-load ctl …`: operations on a running master over gRPC (authenticated with
/// `CLUSTER_SECRET`, or the secret derived from `AUTH_KEY`).
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The master's gRPC URL [default: MASTER_GRPC_URL, else http://127.0.0.1:GRPC_PORT].
    #[arg(long, global = true)]
    pub master: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Workers connected, their snapshot version and last report; the master's lease.
    Status,
    /// Groups with their key counts.
    Groups,
    /// Imports keys from a file (one per line, or comma/space separated) into a group.
    Import {
        #[arg(long)]
        group: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Validates a group's keys now (all, or only `--status active|invalid`).
    Validate {
        #[arg(long)]
        group: String,
        #[arg(long, default_value = "")]
        status: String,
    },
    /// Access keys of the native routes.
    #[command(name = "access-keys", subcommand)]
    AccessKeys(AccessKeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccessKeysCommand {
    /// Every access key (keys masked) with its filters and use.
    List,
    /// Creates an access key and prints it: the only time the whole key is shown.
    Create {
        #[arg(long)]
        name: String,
        /// A group the key may use (repeatable; none: any).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A model name or glob the key may ask for (repeatable; none: any).
        #[arg(long = "model")]
        models: Vec<String>,
        /// A protocol the key may speak: openai, openai-response, anthropic, gemini (repeatable;
        /// none: any).
        #[arg(long = "protocol")]
        protocols: Vec<String>,
        /// RFC 3339 expiry (none: never).
        #[arg(long, default_value = "")]
        expires_at: String,
    },
    /// Disables an access key, by id or unique name.
    Disable { key: String },
}
