//! `[device_flow]`: where device authorizations may come from.

use super::{invalid, ConfigError, FileDeviceFlow};
use crate::domain::origin::{AllowedNetworks, Network};

/// `[device_flow]`: every entry of `allowed_networks` a network (CIDR), named by its index
/// when it is not.
pub(super) fn device_flow(file: Option<FileDeviceFlow>) -> Result<AllowedNetworks, ConfigError> {
    let entries = file.map(|f| f.allowed_networks).unwrap_or_default();
    entries
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Network::parse(text.trim())
                .map_err(|e| invalid(format!("device_flow.allowed_networks[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(AllowedNetworks)
}
