//! `scaivault-pki init`: check the token, create the data directory and the store, and
//! make the bootstrap admin token. Running it again changes nothing and says so.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{
    load_config, open_token, operator, plain, record_step, store_error, CliError, CmdResult,
    Outcome, Report,
};
use scaivault_pki::daemon;
use scaivault_pki::service::auth::{DEFAULT_TENANT, ROOT_TOKEN_FILE};
use scaivault_pki::service::Pki;
use scaivault_pki::store::Store;

pub fn run(config: &Path) -> CmdResult {
    let cfg = load_config(config).map_err(plain)?;
    let who = operator(DEFAULT_TENANT);

    // The token first: a wrong PIN or a missing token is the commonest set-up mistake,
    // and nothing should be created before it is right.
    let token = open_token(&cfg).map_err(plain)?;
    let status = token
        .status()
        .map_err(|e| plain(CliError::failed(e.to_string())))?;
    let mechanisms = token
        .mechanisms()
        .map_err(|e| plain(CliError::failed(e.to_string())))?;
    if !mechanisms.ec && !mechanisms.rsa {
        return Err(plain(CliError::failed(format!(
            "token {:?} offers neither EC nor RSA key generation and signing, so it cannot hold a CA key",
            status.label
        ))));
    }

    let data_dir = &cfg.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        plain(CliError::failed(format!(
            "cannot create {}: {e}",
            data_dir.display()
        )))
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| {
                plain(CliError::failed(format!(
                    "cannot restrict {} to its owner: {e}",
                    data_dir.display()
                )))
            },
        )?;
    }
    let store_dir = data_dir.join("store");
    let store_existed = store_dir.is_dir();
    let store = Store::open(&store_dir).map_err(|e| {
        plain(store_error(
            e,
            "init has nothing to do while the daemon runs",
        ))
    })?;
    let pki = Pki::new(
        store,
        Arc::new(token),
        daemon::service_settings(&cfg).map_err(|e| plain(e.into()))?,
    );
    let created = match pki.ensure_bootstrap_token() {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            record_step(
                Some(&pki),
                &who,
                "init.bootstrap_token",
                None,
                Outcome::Failed(&msg),
            );
            return Err(plain(e.into()));
        }
    };
    if let Some(id) = &created {
        record_step(
            Some(&pki),
            &who,
            "init.bootstrap_token",
            Some(id),
            Outcome::Ok,
        );
    }
    pki.flush().map_err(|e| plain(e.into()))?;

    let token_file = data_dir.join(ROOT_TOKEN_FILE);
    let json = json!({
        "token": {
            "label": status.label,
            "manufacturer": status.manufacturer,
            "model": status.model,
            "serial": status.serial,
            "mechanisms": mechanisms,
        },
        "data_dir": data_dir,
        "store": if store_existed { "existing" } else { "created" },
        "bootstrap_token": {
            "created": created.is_some(),
            "id": created,
            "file": token_file,
        },
    });
    let mut text = format!(
        "Token {:?} ({} {}, serial {}): logged in; EC {}, RSA {}, AES-GCM {}.\n",
        status.label,
        status.manufacturer,
        status.model,
        status.serial,
        yes_no(mechanisms.ec),
        yes_no(mechanisms.rsa),
        yes_no(mechanisms.aes_gcm),
    );
    text.push_str(&format!(
        "Store in {}: {}.\n",
        store_dir.display(),
        if store_existed {
            "already there"
        } else {
            "created"
        }
    ));
    text.push_str(&match &created {
        Some(id) => format!(
            "Bootstrap admin token {id} created; its secret is in {} (mode 0600).\n",
            token_file.display()
        ),
        None => "The bootstrap admin token already exists; nothing changed.\n".to_string(),
    });
    Ok(Report { json, text })
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
