//! `crmsync user ...`

use std::path::Path;

use crmsync_store::{NewUser, UserStore};

use super::{email, open_store};
use crate::cli::{UserCommand, YesNo};
use crate::output::{print_json, print_table, user_json};

pub fn run(config: &Path, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            email: address,
            name,
            no_sync,
            output,
        } => {
            let new = NewUser {
                email: email(&address)?,
                name,
                sync: !no_sync,
            };
            let mut store = open_store(config)?;
            let user = store.add_user(&new)?;
            if output.json {
                print_json(&user_json(&user));
            } else {
                println!(
                    "added user {} {:?} as {}, sync {}",
                    user.email,
                    user.record.name,
                    user.record.number,
                    if user.sync { "yes" } else { "no" }
                );
            }
        }
        UserCommand::List(output) => {
            let store = open_store(config)?;
            let users = store.users()?;
            if output.json {
                print_json(&users.iter().map(user_json).collect());
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.email.clone(),
                            u.record.name.clone(),
                            u.record.number.to_string(),
                            if u.sync { "yes" } else { "no" }.to_owned(),
                        ]
                    })
                    .collect();
                print_table(&["EMAIL", "NAME", "NUMBER", "SYNC"], &rows);
            }
        }
        UserCommand::Set {
            email: address,
            sync,
            output,
        } => {
            let address = email(&address)?;
            let mut store = open_store(config)?;
            let user = store.set_user_sync(&address, matches!(sync, YesNo::Yes))?;
            if output.json {
                print_json(&user_json(&user));
            } else {
                println!(
                    "user {}: sync {}",
                    user.email,
                    if user.sync { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}
