//! The command line, as users type it (`agora --help`; the README's "Using it").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agora",
    version,
    about = "Agora: a self-hostable registry of signed plugins",
    propagate_version = true
)]
pub struct Cli {
    /// Registry URL (default: AGORA_REGISTRY, else the one you logged in to, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "AGORA_REGISTRY")]
    pub registry: Option<String>,
    /// Machine-readable JSON on stdout; messages stay on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify queued releases (the checks every publish queues) as a process of its own,
    /// against the server's database and blob store.
    Worker(WorkerArgs),
    /// Run the registry server.
    Serve(ServeArgs),
    /// Delete blobs nothing refers to, on the server's database and blob store: a blob
    /// goes once it has been unreferenced, and untouched by publishers, for the grace
    /// period over two runs (docs/operations.md).
    Gc(GcArgs),
    /// Check the blob store against metadata: every blob re-hashed, every reference
    /// resolved; reports missing, corrupt, wrongly sized and unreferenced blobs, and exits
    /// non-zero when anything is missing or corrupt.
    Fsck(FsckArgs),
    /// Back up the metadata database (SQLite online copy, or pg_dump) and every blob into
    /// a directory, with a manifest.
    Backup(BackupArgs),
    /// Restore a backup into the configured (empty) database and blob store, then check
    /// the transparency log against the backup's.
    Restore(RestoreArgs),
    /// Write a commented configuration file with every setting and its default.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "agora.toml")]
        config: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check that a server answers: GET a URL, exit 0 on a 2xx answer, else 1 with the
    /// reason (the container image's health check: it has no shell and no curl).
    Probe {
        /// The URL, or a path such as /ready on this host's server (the address in
        /// AGORA_LISTEN, loopback when it is 0.0.0.0; default 127.0.0.1:8080).
        #[arg(default_value = "/health")]
        url: String,
        /// Seconds to wait for the answer (1 to 300).
        #[arg(long, default_value_t = 5,
              value_parser = clap::value_parser!(u64).range(1..=300))]
        timeout: u64,
    },
    /// Store a registry token in your user configuration (mode 0600).
    Login {
        /// The token; read from standard input when absent.
        #[arg(long)]
        token: Option<String>,
    },
    /// Who you are on the registry.
    Whoami,
    /// User accounts (administrators).
    #[command(subcommand)]
    User(UserCommand),
    /// Publishers (namespaces) and their members.
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Start a new plugin in ./NAME: manifest, Rust source speaking the contract, README,
    /// LICENSE; it builds (agora build), passes agora conformance and publishes as is.
    New {
        /// The plugin's name, or PUBLISHER/NAME.
        name: String,
        /// wasm (a WebAssembly component) or exec (a native executable).
        #[arg(long, value_parser = ["wasm", "exec"])]
        runtime: String,
        /// The publisher (namespace) it will be published under (default: the one in
        /// NAME, else my-publisher: edit plugin.yaml before publishing).
        #[arg(long)]
        publisher: Option<String>,
    },
    /// Build a Rust plugin with cargo and put each artifact where plugin.yaml names it
    /// (runtime.module for WASM, built for wasm32-wasip2; runtime.binaries for native).
    Build {
        /// The plugin directory (with plugin.yaml and Cargo.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Native plugins: build the binary of this platform (repeatable, e.g.
        /// linux-aarch64; default: this host's).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Also write the SBOM where plugin.yaml's `sbom` names it (CycloneDX 1.5 JSON,
        /// made by cargo-cyclonedx, which must be installed).
        #[arg(long)]
        sbom: bool,
    },
    /// Run the registry's verification stages that need no registry (manifest lint,
    /// files, WASM or native audit) on a plugin directory or a bundle before publishing
    /// (a bundle's archive is audited before it is unpacked); exits 1 when the
    /// registry's policy would reject it.
    Audit {
        /// The plugin directory or `.agora` bundle (default: .).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Validate a plugin directory and write a release bundle, offline.
    Pack {
        dir: PathBuf,
        /// Bundle file to write (default: PUBLISHER-NAME-VERSION.agora).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign and publish a plugin directory or bundle.
    Publish {
        path: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Make an Ed25519 signing key pair (OpenSSH format; private key file mode 0600).
    Keygen {
        /// Private key file; the public key goes to FILE.pub
        /// (default: ~/.config/agora/keys/agora_ed25519).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Encrypt the private key with the passphrase in this file (or AGORA_KEY_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Replace an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// A publisher's signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The registry's transparency log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Security advisories (administrators).
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// Webhooks: signed HTTP callbacks on publish, verification, lifecycle changes and
    /// advisory matches (a publisher's owners, or administrators for registry-wide ones).
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Tenants (the control plane): members, instances, policy, the approved set,
    /// updates and the fleet.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Entitlements: offer a private plugin to chosen tenants (its publisher's members
    /// with a publish scope), whose members and instances then see and may install it.
    #[command(subcommand)]
    Entitlement(EntitlementCommand),
    /// Search the catalog.
    Search(SearchArgs),
    /// Details of a plugin, or of one version with PUBLISHER/NAME@VERSION.
    Info { plugin: String },
    /// Version history of a plugin.
    Versions { plugin: String },
    /// Install a plugin (and check every byte) into a plugin directory.
    Install {
        /// PUBLISHER/NAME[@REQUIREMENT], e.g. acme/jira@^1.2 or acme/jira@=1.2.0.
        #[arg(required_unless_present = "locked", conflicts_with = "locked")]
        plugin: Option<String>,
        /// Install exactly what the directory's agora.lock pins, with the same bytes.
        #[arg(long)]
        locked: bool,
        /// Install a version marked insecure (exact =VERSION pins only); refused without.
        #[arg(long)]
        allow_insecure: bool,
        /// Install only releases (the plugin and every dependency) the registry's
        /// verification found `verified`.
        #[arg(long)]
        require_verified: bool,
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        log: TrustArgs,
    },
    /// Installed plugins with newer versions: installed, wanted (the newest within the
    /// requirement recorded at install), latest, and the installed version's state.
    Outdated {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Update installed plugins (all, or PLUGIN) to the newest version within the
    /// requirement recorded at install, with their dependencies, all or nothing.
    Update {
        /// PUBLISHER/NAME of an installed plugin (default: every plugin installed by name).
        plugin: Option<String>,
        /// Cross the recorded requirement: take the latest version and record ^LATEST.
        #[arg(long)]
        latest: bool,
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        log: TrustArgs,
    },
    /// Check a release on the registry (signature, every byte), or with --installed the
    /// plugin directory against its agora.lock (local tampering).
    Verify {
        /// PUBLISHER/NAME@VERSION to check.
        #[arg(required_unless_present = "installed", conflicts_with = "installed")]
        release: Option<String>,
        /// Check the installed plugins instead.
        #[arg(long)]
        installed: bool,
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        log: TrustArgs,
    },
    /// Run an installed plugin's entrypoint in the sandbox and print its JSON answer.
    Run {
        /// PUBLISHER/NAME of an installed plugin.
        plugin: String,
        /// The entrypoint, as the manifest names it.
        entrypoint: String,
        /// The JSON input, or @FILE to read it from a file (default: {}).
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        runner: RunnerArgs,
        #[command(flatten)]
        core: CoreArgs,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Check a plugin against the plugin contract by running it in the sandbox.
    Conformance {
        /// A plugin directory (with plugin.yaml), or PUBLISHER/NAME of an installed plugin.
        plugin: String,
        #[command(flatten)]
        runner: RunnerArgs,
        #[command(flatten)]
        dir: DirArg,
    },
    /// What this host can enforce for native plugins (Landlock ABI and layers,
    /// namespaces, cgroup version and controllers, seccomp) under the host policy, and the
    /// tenant policy `agora agent` keeps in the plugin directory, if any.
    Doctor {
        #[command(flatten)]
        runner: RunnerArgs,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Keep a plugin directory at its tenant's approved set: install, update and remove
    /// (each release verified as by install, pinned to its approved manifest digest, under
    /// the host and tenant policies), reload the host, report to the registry.
    Agent(AgentArgs),
    /// Plugins installed in a plugin directory.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Remove an installed plugin.
    Remove {
        plugin: String,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Yank a version: resolution skips it; exact pins still install it.
    Yank(LifecycleArgs),
    /// Undo a yank (or deprecation, or insecure mark).
    Unyank(LifecycleArgs),
    /// Deprecate a version, with a reason and optionally a replacement.
    Deprecate(LifecycleArgs),
    /// Mark a version insecure, with the advisory as reason.
    MarkInsecure(LifecycleArgs),
    /// Take a version down (administrators): bytes deleted, tombstone kept.
    Takedown(LifecycleArgs),
    /// Make a plugin public or private (private: visible only to its publisher's members).
    Visibility {
        /// PUBLISHER/NAME.
        plugin: String,
        #[arg(value_parser = ["public", "private"])]
        visibility: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: ./agora.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded database and blobs.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Configuration file, the server's (default: ./agora.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded database and blobs, the server's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run what is due, then exit.
    #[arg(long)]
    pub once: bool,
    /// Verifications run at the same time by this process (1 to 64).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WORKER_CONCURRENCY)))]
    pub concurrency: u16,
}

/// The server's configuration and data directory, for commands run beside it.
#[derive(Debug, Args)]
pub struct ServerDirArgs {
    /// Configuration file, the server's (default: ./agora.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded database and blobs, the server's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub server: ServerDirArgs,
    /// Hours a blob must have been unreferenced and untouched (1 to 720; default: `[gc]
    /// grace_hours`, 24).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub grace: Option<u64>,
    /// Report what would be marked and deleted, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    #[command(flatten)]
    pub server: ServerDirArgs,
    /// Check sizes and references only, without re-hashing the bytes.
    #[arg(long)]
    pub no_hash: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub server: ServerDirArgs,
    /// The backup directory (created; a backup there already is brought up to date).
    #[arg(long)]
    pub to: PathBuf,
    /// Where the blobs go instead of TO/blobs: a directory or
    /// s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
    #[arg(long)]
    pub blobs_to: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub server: ServerDirArgs,
    /// The backup directory.
    #[arg(long)]
    pub from: PathBuf,
    /// Where the backup's blobs are, when not where the manifest says.
    #[arg(long)]
    pub blobs_from: Option<String>,
    /// Restore over a database or blob store that is not empty (the database's tables
    /// are replaced; blobs are added).
    #[arg(long)]
    pub force: bool,
}

/// Most verifications one `agora worker` process runs at the same time.
pub const MAX_WORKER_CONCURRENCY: u16 = 64;

#[derive(Debug, Args)]
pub struct DirArg {
    /// Plugin directory.
    #[arg(long, default_value = "plugins")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// Host policy file (TOML; see docs/runner.md). Default: AGORA_RUNNER_POLICY, else
    /// ~/.config/agora/policy.toml if present, else an open policy with default ceilings,
    /// no outbound hosts and no secrets.
    #[arg(long, env = "AGORA_RUNNER_POLICY")]
    pub policy: Option<PathBuf>,
    /// Runner state: work directories and compiled modules (default: ~/.local/share/agora/runner).
    #[arg(long, env = "AGORA_RUNNER_STATE")]
    pub state_dir: Option<PathBuf>,
    /// Audit log, JSON lines (default: audit.jsonl in the state directory).
    #[arg(long, env = "AGORA_RUNNER_AUDIT")]
    pub audit: Option<PathBuf>,
}

/// The host's core that a plugin's callbacks go to (`agora run`).
#[derive(Debug, Args)]
pub struct CoreArgs {
    /// Forward the plugin's declared callbacks to this core: POST URL/v1/callbacks/NAME
    /// (http or https; see docs/plugin-contract.md). Without it, callbacks get 503.
    #[arg(long, value_name = "URL")]
    pub core_url: Option<String>,
    /// File holding the core's secret (at least 32 bytes; a trailing line break is
    /// ignored), which every launch's callback key is derived from. Default: the
    /// environment variable AGORA_CORE_SECRET.
    #[arg(long, value_name = "FILE")]
    pub core_secret_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// File holding the instance's credential (`agi_...`, from `agora tenant instance
    /// register`); keep it mode 0600.
    #[arg(long)]
    pub token_file: PathBuf,
    /// Run `sh -c CMD` after each change (env AGORA_AGENT_DIR, AGORA_GENERATION).
    #[arg(long, value_name = "CMD")]
    pub reload_hook: Option<String>,
    /// Seconds each long poll waits for a change (1 to 60).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub wait: u32,
    /// Seconds between reports when nothing changes; the longest retry delay.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,
    /// One round (fetch, converge, report), then exit: 0 converged, 1 not.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub log: TrustArgs,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The registry's log key to trust (`<origin>+<hash>+<key>`), instead of the one
    /// pinned on first use.
    #[arg(long, env = "AGORA_LOG_KEY")]
    pub log_key: Option<String>,
    /// Accept the registry's current log key, replacing the pinned one.
    #[arg(long)]
    pub repin_log_key: bool,
    /// The host application's version: releases whose min_core is newer are not chosen.
    #[arg(long, env = "AGORA_CORE_VERSION")]
    pub core_version: Option<semver::Version>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Private key to sign with (default: AGORA_SIGNING_KEY, else ~/.config/agora/keys/agora_ed25519).
    #[arg(long, env = "AGORA_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Sign with this GnuPG key (id, fingerprint or e-mail) through the `gpg` program.
    #[arg(long, conflicts_with = "key")]
    pub gpg: Option<String>,
    /// File holding the key's passphrase (or set AGORA_KEY_PASSPHRASE).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register a public key (FILE: an OpenSSH public key, e.g. agora_ed25519.pub).
    Add { publisher: String, file: PathBuf },
    /// List a publisher's keys.
    List { publisher: String },
    /// Revoke a key: its past releases stay, new ones signed with it are refused.
    Revoke {
        publisher: String,
        /// The key id (SHA256:...), as `agora key list` shows it.
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        name: String,
        /// admin, publisher or user.
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List users.
    List,
    /// Set the password a user signs in to the web pages with (default: your own). The
    /// password is read from standard input (first line), never from the command line.
    Password {
        /// Whose password (administrators may set anyone's).
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Create a publisher; you become its owner.
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Add a member: administrators add at once; owners (token with members:PUBLISHER)
    /// change a member's role or invite a user, who then accepts.
    AddMember {
        publisher: String,
        user: String,
        /// owner or member.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a member (owners), or yourself (leave). The last owner cannot be removed.
    RemoveMember { publisher: String, user: String },
    /// Open invitations: yours, or a publisher's (owners).
    Invitations { publisher: Option<String> },
    /// Accept an invitation to join a publisher.
    Accept { publisher: String },
    /// Decline your invitation, or withdraw USER's (owners).
    Decline {
        publisher: String,
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Import OSV records (a .json file holding one record or a list, or a directory of
    /// them, as OSV publishes its data). Releases whose SBOM lists an affected component
    /// version are marked insecure, with the advisory id as the reason.
    Import {
        /// A file or a directory (read recursively for *.json).
        path: PathBuf,
    },
    /// Run the scheduled re-check now, on the server's database (like `agora worker`):
    /// import the `[advisories] dir` feed when set, then mark insecure every release a
    /// stored advisory covers that is not marked yet.
    Recheck {
        /// Configuration file, the server's (default: ./agora.toml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory of the embedded database and blobs, the server's.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// On or off.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn on(self) -> bool {
        matches!(self, Switch::On)
    }
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (administrators).
    Create {
        /// Lowercase letters, digits and single hyphens.
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Its first administrator (default: you).
        #[arg(long)]
        admin: Option<String>,
    },
    /// The tenants you belong to (every tenant, for an administrator).
    List,
    /// A tenant's members.
    Members { tenant: String },
    /// Add a member, change their role, or remove them.
    Member {
        tenant: String,
        user: String,
        #[arg(long, value_parser = ["admin", "member"], required_unless_present = "remove")]
        role: Option<String>,
        #[arg(long, conflicts_with = "role")]
        remove: bool,
    },
    /// Show the tenant's policy (TOML, the host policy file's fields), or replace it.
    Policy {
        tenant: String,
        /// A policy file to set (the host policy format; secret grants without a source).
        #[arg(long)]
        set: Option<PathBuf>,
        /// Apply updates that ask for no more than was approved without an administrator.
        #[arg(long, value_enum)]
        auto_update: Option<Switch>,
    },
    /// A tenant's instances.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// The approved set: each plugin pinned to a version and its manifest digest.
    Approved { tenant: String },
    /// Approve a plugin for the tenant (or move its pin), after showing what it will be
    /// able to reach and which instances can run it.
    Install {
        tenant: String,
        /// PUBLISHER/NAME[@VERSION] (default: its latest version).
        plugin: String,
        /// Only show what would be approved.
        #[arg(long)]
        dry_run: bool,
    },
    /// Take a plugin out of the approved set; instances remove it.
    Remove { tenant: String, plugin: String },
    /// Move a plugin's pin back to the version before its last move.
    Rollback { tenant: String, plugin: String },
    /// Per approved plugin, its newer versions: changelog, verification, what each asks
    /// beyond the approval.
    Updates { tenant: String },
    /// Move one plugin's pin (or, without PLUGIN, every plugin's) to its newest
    /// applicable version.
    Apply {
        tenant: String,
        plugin: Option<String>,
    },
    /// Which instance runs which digest, which are behind, which failed and why.
    Fleet { tenant: String },
    /// The private plugins offered to the tenant.
    Entitlements { tenant: String },
}

#[derive(Debug, Subcommand)]
pub enum EntitlementCommand {
    /// Offer a private plugin to a tenant: its members and instances see it, and its
    /// administrators may approve it.
    Grant {
        /// PUBLISHER/NAME.
        plugin: String,
        tenant: String,
    },
    /// Withdraw the offer; the plugin also leaves the tenant's approved set, and its
    /// instances remove it.
    Revoke {
        /// PUBLISHER/NAME.
        plugin: String,
        tenant: String,
    },
    /// The tenants a plugin is offered to.
    List {
        /// PUBLISHER/NAME.
        plugin: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Register an instance; its credential is printed (or written to --token-file) once.
    Register {
        tenant: String,
        /// Lowercase letters, digits and single hyphens; unique in the tenant.
        name: String,
        /// Write the credential to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// The tenant's instances and what each last reported.
    List { tenant: String },
    /// Revoke an instance's credential.
    Revoke { tenant: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a hook; its signing secret is printed this once.
    Create {
        /// The publisher whose events it receives (default: every publisher's, a
        /// registry-wide hook, for administrators).
        #[arg(long)]
        publisher: Option<String>,
        /// Where deliveries are POSTed (http:// or https://).
        #[arg(long)]
        url: String,
        /// An event to receive (repeatable): release.published, verification.completed,
        /// release.lifecycle, advisory.matched.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// Create it disabled (nothing is sent until it is enabled).
        #[arg(long)]
        disabled: bool,
    },
    /// List a publisher's hooks, or the registry-wide ones.
    List {
        #[arg(long)]
        publisher: Option<String>,
    },
    /// Delete a hook with its pending deliveries and history.
    Remove { id: i64 },
    /// A hook's delivery attempts, newest first.
    Deliveries { id: i64 },
    /// Send a webhook.ping delivery to a hook.
    Ping { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Read the log from where the last run stopped, check it against the registry's
    /// signed checkpoint, and report every key event, release, lifecycle and visibility
    /// change of the publishers you follow. Exits with status 1 if the log shows the
    /// registry misbehaving (a forked key history, a release accepted against an old one).
    Monitor {
        /// Follow this publisher from now on (repeatable; without any, all are reported).
        #[arg(long = "follow")]
        follow: Vec<String>,
        #[command(flatten)]
        log: TrustArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is shown once.
    Create {
        /// Scopes (repeatable): admin, read:private, review, publish:*, publish:PUBLISHER,
        /// members:*, members:PUBLISHER. See docs/security.md for what each allows.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime, e.g. 30d, 12h, 90days.
        #[arg(long)]
        expires: Option<String>,
        /// Create it for another user (administrators).
        #[arg(long)]
        user: Option<String>,
    },
    /// List your tokens.
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to look for (words of three letters or more also match as prefixes).
    pub query: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub capability: Option<String>,
    /// wasm, exec or oci.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Only this publisher's plugins.
    #[arg(long)]
    pub publisher: Option<String>,
    /// Only plugins of verified publishers.
    #[arg(long)]
    pub verified: bool,
    /// Only plugins rated at least this on average (1 to 5).
    #[arg(long, value_name = "STARS")]
    pub min_rating: Option<u8>,
    /// Only plugins whose latest version runs on this host version (its min_core).
    #[arg(long, value_name = "VERSION")]
    pub compatible_with: Option<String>,
    /// relevance (default with words), downloads (default without), recent, name or rating.
    #[arg(long)]
    pub sort: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

impl SearchArgs {
    /// The one shape of a search, as the API takes it.
    pub fn params(self) -> agora_core::api::SearchParams {
        agora_core::api::SearchParams {
            q: self.query,
            tag: self.tag,
            category: self.category,
            provider: self.provider,
            capability: self.capability,
            runtime: self.runtime,
            publisher: self.publisher,
            verified: self.verified.then_some(true),
            verified_release: None,
            min_rating: self.min_rating,
            compatible_with: self.compatible_with,
            sort: self.sort,
            cursor: self.cursor,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// The version to change, as PUBLISHER/NAME@VERSION.
    #[arg(value_name = "PUBLISHER/NAME@VERSION")]
    pub release: String,
    #[arg(long)]
    pub reason: Option<String>,
    /// For deprecation: the plugin to use instead (PUBLISHER/NAME).
    #[arg(long)]
    pub replacement: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `docs/cli.md` names every command and every long flag of each.
    #[test]
    fn the_cli_reference_names_every_command_and_flag() {
        use clap::CommandFactory;
        const DOC: &str = include_str!("../../../docs/cli.md");

        /// `needle` occurs in the doc not followed by more of a name.
        fn mentioned(needle: &str) -> bool {
            DOC.match_indices(needle).any(|(at, _)| {
                !DOC[at + needle.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        }

        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if !mentioned(path) {
                missing.push(format!("command `{path}`"));
            }
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if long == "help" || long == "version" {
                    continue;
                }
                if !mentioned(&format!("--{long}")) {
                    missing.push(format!("flag `--{long}` of `{path}`"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }

        let mut cli = super::Cli::command();
        cli.build();
        let mut missing = Vec::new();
        walk(&cli, cli.get_name(), &mut missing);
        assert!(
            missing.is_empty(),
            "docs/cli.md does not mention: {}",
            missing.join(", ")
        );
    }

    /// Splits a shell command line into words: single and double quotes, no expansion
    /// (a `$...` word stays as written). Stops at a comment; drops `<`/`>` redirections.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.chars().peekable();
        let mut skip_next = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' | '"' => {
                    let w = word.get_or_insert_with(String::new);
                    for q in chars.by_ref() {
                        if q == c {
                            break;
                        }
                        w.push(q);
                    }
                }
                '#' if word.is_none() => break,
                '<' | '>' if word.is_none() => skip_next = true,
                c if c.is_whitespace() => {
                    if let Some(w) = word.take()
                        && !std::mem::take(&mut skip_next)
                    {
                        words.push(w);
                    }
                }
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        if let Some(w) = word
            && !skip_next
        {
            words.push(w);
        }
        words
    }

    /// Every `agora ...` command the README and the docs show a user (in code spans and
    /// sh blocks) parses with today's command line: no renamed command or flag.
    #[test]
    fn every_documented_command_parses() {
        use clap::Parser;
        let docs = [
            ("README.md", include_str!("../../../README.md")),
            ("docs/cli.md", include_str!("../../../docs/cli.md")),
            ("docs/runner.md", include_str!("../../../docs/runner.md")),
            (
                "docs/plugin-contract.md",
                include_str!("../../../docs/plugin-contract.md"),
            ),
            ("docs/web.md", include_str!("../../../docs/web.md")),
            (
                "docs/operations.md",
                include_str!("../../../docs/operations.md"),
            ),
            (
                "docs/security.md",
                include_str!("../../../docs/security.md"),
            ),
        ];
        let mut checked = 0;
        let mut broken = Vec::new();
        for (file, text) in docs {
            let mut commands: Vec<String> = Vec::new();
            let mut in_sh = false;
            for line in text.lines() {
                if line.starts_with("```") {
                    in_sh = line.trim() == "```sh";
                    continue;
                }
                if in_sh {
                    let line = line.trim();
                    if line.starts_with("agora ") {
                        commands.push(line.to_owned());
                    }
                    continue;
                }
                // Code spans: `agora ...` (one span per command; `; ` separates two).
                for span in line.split('`').skip(1).step_by(2) {
                    for part in span.split("; ") {
                        if part.starts_with("agora ") && !part.contains("...") {
                            commands.push(part.to_owned());
                        }
                    }
                }
            }
            for command in commands {
                let words = shell_words(&command);
                // Synopses with placeholders (UPPER-CASE words, [optional], a|b) are
                // described, not typed.
                if words.iter().any(|w| {
                    w.starts_with('[')
                        || w.contains('|')
                        || (w.len() > 1
                            && w.chars()
                                .all(|c| c.is_ascii_uppercase() || "_-/@:.".contains(c)))
                }) {
                    continue;
                }
                checked += 1;
                if let Err(e) = super::Cli::try_parse_from(&words) {
                    use clap::error::ErrorKind;
                    // Prose names a command or a flag without its arguments; only a
                    // command or flag that does not exist, or a value it refuses, is broken.
                    let mention = matches!(
                        e.kind(),
                        ErrorKind::MissingRequiredArgument
                            | ErrorKind::DisplayHelp
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                            | ErrorKind::DisplayVersion
                    ) || (words.last().is_some_and(|w| w.starts_with("--"))
                        && e.kind() == ErrorKind::InvalidValue);
                    if mention {
                        continue;
                    }
                    let e = e.to_string();
                    broken.push(format!(
                        "{file}: `{command}`: {}",
                        e.lines().next().unwrap_or("")
                    ));
                }
            }
        }
        assert!(checked > 30, "only {checked} documented commands found");
        assert!(
            broken.is_empty(),
            "documented commands that do not parse:\n{}",
            broken.join("\n")
        );
    }
}
