//! Devices registered for push notifications: at most
//! [`MAX_DEVICES`] per user, each checked against the node's
//! [`crate::push::DevicePolicy`].

use crate::error::ApiError;
use crate::model::{Device, UserId};
use crate::node::Node;
use crate::protocol::ErrorCode;
use crate::push::MAX_DEVICES;

impl Node {
    /// Registers (or re-registers, same id) a device of `user` for push
    /// notifications.
    pub async fn register_device(&self, user: UserId, device: Device) -> Result<Device, ApiError> {
        self.devices.check(&device).map_err(ApiError::invalid)?;
        let existing = self.store.devices(user).await?;
        let known = existing.iter().any(|d| d.device_id == device.device_id);
        if !known && existing.len() >= MAX_DEVICES {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("at most {MAX_DEVICES} devices per user; remove one first"),
            ));
        }
        self.store.put_device(user, &device).await?;
        Ok(device)
    }
    pub async fn devices(&self, user: UserId) -> Result<Vec<Device>, ApiError> {
        Ok(self.store.devices(user).await?)
    }
    /// Unregisters a device; unknown ids are not an error (idempotent).
    pub async fn remove_device(&self, user: UserId, device_id: &str) -> Result<(), ApiError> {
        Ok(self.store.remove_device(user, device_id).await?)
    }
}
