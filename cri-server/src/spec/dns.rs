//! A pod's `resolv.conf`, written from its DNS configuration.

use k8s_cri::v1 as cri;

use crate::error::{CriError, Result};

/// The text of a `resolv.conf` for the pod's DNS config: one `nameserver`
/// line per server, then `search` and `options` lines, as the kubelet's
/// other runtimes write it. An entry holding white space or a line break
/// is refused (it would change the file's meaning).
pub fn resolv_conf_text(dns: &cri::DnsConfig) -> Result<String> {
    let check = |what: &str, value: &str| {
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            Err(CriError::InvalidArgument(format!(
                "DNS {what} {value:?} is empty or holds white space"
            )))
        } else {
            Ok(())
        }
    };
    let mut text = String::new();
    for server in &dns.servers {
        check("server", server)?;
        text.push_str(&format!("nameserver {server}\n"));
    }
    for search in &dns.searches {
        check("search domain", search)?;
    }
    for option in &dns.options {
        check("option", option)?;
    }
    if !dns.searches.is_empty() {
        text.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        text.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(text)
}
