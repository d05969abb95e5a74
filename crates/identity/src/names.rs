//! Agent names and sponsor e-mail addresses.

/// Why a name or e-mail address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("agent name is empty")]
    EmptyName,
    #[error("agent name `{0}` is longer than 64 characters")]
    NameTooLong(String),
    #[error(
        "agent name `{0}` must start with a letter or digit and hold only letters, digits, `.`, `-` and `_` (it becomes a SPIFFE path segment)"
    )]
    BadName(String),
    #[error("agent name `{0}` looks like a DID; names are human-readable labels")]
    NameIsDid(String),
    #[error("`{0}` is not an e-mail address (expected local@domain.tld)")]
    BadEmail(String),
}

/// Validates an agent name: 1–64 of `[A-Za-z0-9._-]`, starting with a letter
/// or digit, so it is also a valid SPIFFE path segment.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::EmptyName);
    }
    if name.starts_with("did:") {
        return Err(NameError::NameIsDid(name.to_owned()));
    }
    if name.len() > 64 {
        return Err(NameError::NameTooLong(name.to_owned()));
    }
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !first_ok || !rest_ok {
        return Err(NameError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Validates a sponsor's e-mail address and returns it lowercased, so
/// `Alice@Company.com` and `alice@company.com` are one sponsor.
pub fn validate_email(email: &str) -> Result<String, NameError> {
    let bad = || NameError::BadEmail(email.to_owned());
    if email.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-=?^_`{|}~.".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !local_ok || !domain_ok {
        return Err(bad());
    }
    Ok(email.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names() {
        for ok in ["data-analyst-agent", "a", "Agent_7.v2", &"x".repeat(64)] {
            validate_agent_name(ok).expect(ok);
        }
        assert_eq!(validate_agent_name(""), Err(NameError::EmptyName));
        for bad in ["-flag", ".hidden", "a b", "a/b", "a:b", "naïve", "a\n"] {
            assert!(
                matches!(validate_agent_name(bad), Err(NameError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_agent_name(&"x".repeat(65)),
            Err(NameError::NameTooLong(_))
        ));
        assert!(matches!(
            validate_agent_name("did:mesh:z6Mk"),
            Err(NameError::NameIsDid(_))
        ));
    }

    #[test]
    fn emails() {
        assert_eq!(
            validate_email("Alice@Company.com").as_deref(),
            Ok("alice@company.com")
        );
        validate_email("bob.smith+agents@sub.example.org").expect("valid");
        for bad in [
            "alice",
            "@company.com",
            "alice@",
            "alice@company",
            "alice@@company.com",
            "alice@company..com",
            "al ice@company.com",
            ".alice@company.com",
            "alice@-co.com",
            "alice@company.com\n",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
