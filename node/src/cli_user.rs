//! `bottomline user …`: the people who log in to a node's dashboard — add, passwd, remove,
//! list. Only the accounts file is touched (never the store), so these work while the node
//! runs, and a running node takes the change at its next login or request.
//! Everything is done by [`bottomline::http::accounts`]; this file parses, asks and prints.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bottomline::config::Config;
use bottomline::division::Code;
use bottomline::http::accounts::{self, Account, AccountsError};
use bottomline::security::identity::check_name;
use bottomline::security::Role;
use clap::{Args, Subcommand};

/// What to do with the accounts.
#[derive(Args)]
pub struct UserArgs {
    #[command(subcommand)]
    cmd: UserCmd,
}

/// The node whose accounts these are.
#[derive(Args)]
struct NodeConfig {
    /// The node's config file (its division, and its accounts file: `accounts`, or
    /// DATA_DIR/accounts.toml).
    #[arg(short, long, env = "BOTTOMLINE_CONFIG")]
    config: PathBuf,
}

/// Where the password comes from.
#[derive(Args)]
struct PasswordInput {
    /// Read the password from the first line of standard input (for scripts) instead of
    /// asking for it on the terminal.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a person who can log in to the dashboard (asks for the password twice; at least
    /// 8 characters).
    Add {
        #[command(flatten)]
        config: NodeConfig,
        /// Login name: 1-64 ASCII letters, digits, '.', '_' or '-'.
        name: String,
        /// viewer (reads) or operator (reads and acts on tickets).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The division whose subtree the person works in (default: the node's own; must be
        /// the node's division or below it).
        #[arg(long)]
        division: Option<Code>,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Set a new password for an account (asks for it twice).
    Passwd {
        #[command(flatten)]
        config: NodeConfig,
        /// The account's name.
        name: String,
        #[command(flatten)]
        password: PasswordInput,
    },
    /// Remove an account: it can no longer log in, and its open sessions end.
    Remove {
        #[command(flatten)]
        config: NodeConfig,
        /// The account's name.
        name: String,
    },
    /// List the accounts: name, role, division.
    List {
        #[command(flatten)]
        config: NodeConfig,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
}

/// Run `bottomline user …`.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    match args.cmd {
        UserCmd::Add {
            config,
            name,
            role,
            division,
            password,
        } => {
            let config = load(&config.config)?;
            let path = config.accounts_path();
            // Everything that can be refused is refused before asking for the password.
            check_name(&name).map_err(anyhow::Error::msg)?;
            let division = division.unwrap_or(config.division);
            if !config.division.contains(division) {
                return Err(AccountsError::DivisionOutside {
                    division: division.to_string(),
                    node: config.division.to_string(),
                }
                .into());
            }
            if accounts::list(&path)?.iter().any(|a| a.name == name) {
                return Err(AccountsError::Exists { name, path }.into());
            }
            let pw = read_password(password.password_stdin, &format!("password for {name}"))?;
            let a = accounts::add(&path, config.division, &name, role, Some(division), &pw)?;
            let now = match config.http_listen {
                Some(addr) => format!("it can log in to the dashboard now (http://{addr}/)"),
                None => "it can log in once the node serves the dashboard (http_listen in the \
                         config)"
                    .to_owned(),
            };
            println!("added {}; {now}", describe(&a));
            Ok(())
        }
        UserCmd::Passwd {
            config,
            name,
            password,
        } => {
            let config = load(&config.config)?;
            let path = config.accounts_path();
            if !accounts::list(&path)?.iter().any(|a| a.name == name) {
                return Err(AccountsError::Unknown { name, path }.into());
            }
            let pw = read_password(password.password_stdin, &format!("new password for {name}"))?;
            let a = accounts::set_password(&path, &name, &pw)?;
            println!(
                "changed the password of {}; the old one no longer works",
                describe(&a)
            );
            Ok(())
        }
        UserCmd::Remove { config, name } => {
            let config = load(&config.config)?;
            let a = accounts::remove(&config.accounts_path(), &name)?;
            println!(
                "removed {}; it can no longer log in, and its open dashboard sessions end",
                describe(&a)
            );
            Ok(())
        }
        UserCmd::List { config } => {
            let config = load(&config.config)?;
            let path = config.accounts_path();
            let list = accounts::list(&path)?;
            if list.is_empty() {
                println!(
                    "no accounts in {} (add one with `bottomline user add NAME --role viewer`)",
                    path.display()
                );
                return Ok(());
            }
            let width = list.iter().map(|a| a.name.len()).max().unwrap_or(0).max(4);
            println!("{:width$}  {:8}  DIVISION", "NAME", "ROLE");
            for a in &list {
                println!(
                    "{:width$}  {:8}  {}",
                    a.name,
                    a.role.as_str(),
                    division(a.division)
                );
            }
            Ok(())
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

/// "viewer wang (division 61)".
fn describe(a: &Account) -> String {
    format!("{} {} (division {})", a.role, a.name, division(a.division))
}

fn division(code: Code) -> String {
    if code == Code::ROOT {
        "national".to_owned()
    } else {
        code.to_string()
    }
}

/// The password: one line of standard input with `--password-stdin` or when standard input
/// is not a terminal; otherwise asked twice on the terminal without echo.
fn read_password(from_stdin: bool, what: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let pw = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line);
        if pw.is_empty() {
            bail!("no password on standard input (give it as the first line)");
        }
        accounts::check_password(pw)?;
        return Ok(pw.to_owned());
    }
    let pw = prompt_hidden(&format!("{what}: "))?;
    // Refused at once rather than after typing it twice.
    accounts::check_password(&pw)?;
    let again = prompt_hidden(&format!("{what} (again): "))?;
    if again != pw {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(pw)
}

/// Ask on the terminal (prompt on stderr, standard input with echo off).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let line = {
        let _echo_off = EchoOff::new().context("cannot turn off echo on the terminal")?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from the terminal")?;
        line
    };
    if line.is_empty() {
        // End of input (Ctrl-D): the newline was not echoed.
        eprintln!();
        bail!("no password given; nothing was changed");
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Standard input's terminal without echo (but with the newline echoed) until dropped.
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> std::io::Result<EchoOff> {
        // SAFETY: tcgetattr fills the termios it is given; all-zero is a valid value of it.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut term) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let saved = term;
        term.c_lflag &= !libc::ECHO;
        term.c_lflag |= libc::ECHONL;
        // SAFETY: a termios obtained from tcgetattr, on a descriptor we did not close.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &term) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}
