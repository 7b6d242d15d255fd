//! Prometheus HTTP service discovery (`GET /v1/networks/{network}/prometheus`): a network's
//! instances as `http_sd_configs` target groups, so Prometheus scrapes what is registered.
//! The route (in `http`) asks `ops` for the instances; this only says them Prometheus' way.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Endpoint, Instance};

/// One target group of the `http_sd_configs` format: one instance, with its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TargetGroup {
    /// `host:port` to scrape.
    pub targets: Vec<String>,
    /// `__meta_netget_*` labels (network, service, instance_id, status, version, tags,
    /// address, registry, and `metadata_<key>` for each metadata key), and `__scheme__`.
    pub labels: BTreeMap<String, String>,
}

/// The target groups of `instances`; an instance whose address has no port to tell (nor a
/// scheme that implies one) is left out, as Prometheus could not scrape it.
pub fn target_groups<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Vec<TargetGroup> {
    instances.into_iter().filter_map(group).collect()
}

fn group(i: &Instance) -> Option<TargetGroup> {
    let endpoint = Endpoint::of(&i.address)?;
    let mut labels = BTreeMap::new();
    let mut meta = |k: &str, v: String| {
        labels.insert(format!("__meta_netget_{k}"), v);
    };
    meta("network", i.network.to_string());
    meta("service", i.name.to_string());
    meta("instance_id", i.id.to_string());
    meta("status", i.status.as_str().to_string());
    meta("address", i.address.clone());
    meta("registry", i.registry.to_string());
    if let Some(v) = &i.version {
        meta("version", v.clone());
    }
    // Comma-wrapped, as Consul's SD writes them: a relabel regex `.*,v1,.*` matches one tag.
    meta("tags", format!(",{},", i.tags.joined()));
    for (k, v) in i.metadata.to_map() {
        let value = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        meta(&format!("metadata_{}", label_name(&k)), value);
    }
    if let Some(s @ ("http" | "https")) = endpoint.scheme.as_deref() {
        labels.insert("__scheme__".into(), s.to_string());
    }
    Some(TargetGroup {
        targets: vec![endpoint.host_port()],
        labels,
    })
}

/// A metadata key as a label name may be written: `[a-zA-Z0-9_]`, anything else as `_`.
fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, NetworkName, Registration, ServiceName};

    fn instance(address: &str) -> Instance {
        let reg = Registration {
            address: address.into(),
            tags: vec!["v1".into(), "blue".into()],
            version: Some("1.2.0".into()),
            metadata: [
                ("zone".to_string(), serde_json::json!("eu-1")),
                ("team.owner".to_string(), serde_json::json!("core")),
                ("shards".to_string(), serde_json::json!(4)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        Instance::from_registration(
            NetworkName::new("development").unwrap(),
            ServiceName::new("web").unwrap(),
            InstanceId::new("a").unwrap(),
            reg,
            "r1",
        )
    }

    #[test]
    fn an_instance_is_a_target_with_its_meta_labels() {
        let i = instance("https://10.0.0.5:8443/app");
        let g = target_groups([&i]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets, ["10.0.0.5:8443"]);
        let l = &g[0].labels;
        assert_eq!(l["__meta_netget_network"], "development");
        assert_eq!(l["__meta_netget_service"], "web");
        assert_eq!(l["__meta_netget_instance_id"], "a");
        assert_eq!(l["__meta_netget_status"], "passing");
        assert_eq!(l["__meta_netget_version"], "1.2.0");
        assert_eq!(l["__meta_netget_tags"], ",v1,blue,");
        assert_eq!(l["__meta_netget_metadata_zone"], "eu-1");
        assert_eq!(l["__meta_netget_metadata_team_owner"], "core");
        assert_eq!(l["__meta_netget_metadata_shards"], "4");
        assert_eq!(l["__scheme__"], "https");
    }

    #[test]
    fn an_address_without_a_port_is_left_out() {
        assert!(target_groups([&instance("10.0.0.5")]).is_empty());
        assert_eq!(
            target_groups([&instance("[fd00::1]:9100")])[0].targets,
            ["[fd00::1]:9100"]
        );
    }
}
