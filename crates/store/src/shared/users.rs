//! CRM users and their sync privilege.

use crmsync_core::model::{EmailAddress, EntityName};

use super::Backend;
use super::records::{
    RECORD_REF_COLUMNS, check_name, insert_record, missing_id, next_number, raw_record_ref,
    record_ref_from, replace_emails,
};
use crate::UserStore;
use crate::sql::{Param, Sql, optional, params};
use crate::{NewUser, Result, StoreError, UserRow};

pub(super) fn user_id_by_email(conn: &mut dyn Sql, email: &EmailAddress) -> Result<String> {
    optional(
        conn,
        "SELECT record_id FROM users WHERE email = ?1",
        params![email.as_str()],
    )?
    .ok_or_else(|| StoreError::NotFound(format!("user {email}")))
}

pub(super) fn load_user(conn: &mut dyn Sql, email: &EmailAddress) -> Result<UserRow> {
    load_users(conn, "u.email = ?1", params![email.as_str()])?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("user {email}")))
}

pub(super) fn load_users(
    conn: &mut dyn Sql,
    filter: &str,
    args: &[Param<'_>],
) -> Result<Vec<UserRow>> {
    let sql = format!(
        "SELECT {RECORD_REF_COLUMNS}, u.email, u.sync FROM users u
         JOIN records r ON r.id = u.record_id WHERE {filter} ORDER BY u.email"
    );
    let mut users = Vec::new();
    for row in conn.query(&sql, args)? {
        let raw = raw_record_ref(&row, 0)?.ok_or_else(|| missing_id("users"))?;
        users.push(UserRow {
            record: record_ref_from(raw)?,
            email: row.get(4)?,
            sync: row.get(5)?,
        });
    }
    Ok(users)
}

impl<B: Backend> UserStore for B {
    fn add_user(&mut self, user: &NewUser) -> Result<UserRow> {
        check_name(&user.name)?;
        self.write(|tx| {
            if load_user(tx, &user.email).is_ok() {
                return Err(StoreError::Conflict(format!(
                    "a user with address {} already exists",
                    user.email
                )));
            }
            let entity = EntityName::new(EntityName::SYSTEMUSER)?;
            let number = next_number(tx, &entity)?;
            let id = insert_record(tx, &entity, &number, &user.name, None, None)?;
            replace_emails(tx, &id, std::slice::from_ref(&user.email))?;
            tx.execute(
                "INSERT INTO users (record_id, email, sync) VALUES (?1, ?2, ?3)",
                params![id, user.email.as_str(), user.sync],
            )?;
            load_user(tx, &user.email)
        })
    }

    fn users(&self) -> Result<Vec<UserRow>> {
        self.read(|conn| load_users(conn, "1 = 1", &[]))
    }

    fn user(&self, email: &EmailAddress) -> Result<UserRow> {
        self.read(|conn| load_user(conn, email))
    }

    fn set_user_sync(&mut self, email: &EmailAddress, sync: bool) -> Result<UserRow> {
        self.write(|tx| {
            // Setting the privilege a user already has writes nothing, so the journal only
            // shows real changes.
            tx.execute(
                "UPDATE users SET sync = ?1 WHERE email = ?2 AND sync <> ?1",
                params![sync, email.as_str()],
            )?;
            load_user(tx, email)
        })
    }
}
