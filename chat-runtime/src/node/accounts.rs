//! Accounts on the node: sign-up, sign-in (with its per-address and
//! per-account backoff and the hashing pool), tokens.

use super::*;

impl Node {
    pub async fn register(
        &self,
        client: ClientAddr,
        phone: &str,
        display_name: &str,
        password: &str,
    ) -> Result<User, ApiError> {
        if let Err(not_until) = self.signups.check_key(&client) {
            audit::record(&self.metrics, Event::SignUpRefused { client });
            let message = "too many sign-ups from this address; wait before trying again";
            return Err(limited(&not_until, message));
        }
        if self.signups.len() > MAX_TRACKED_ADDRESSES {
            self.signups.retain_recent();
        }
        if !valid_phone(phone) {
            return Err(ApiError::invalid(
                "phone must be + followed by 6 to 15 digits",
            ));
        }
        let name = crate::text::display_name(display_name).map_err(ApiError::invalid)?;
        if password.len() < 8 || password.len() > 256 {
            return Err(ApiError::invalid("password must be 8 to 256 bytes"));
        }
        let _hashing = self.hashing_slot(client)?;
        let password_hash = self
            .passwords
            .hash(password.to_owned())
            .await
            .ok_or_else(|| pool_full("too many sign-ups at once; retry"))?;
        let user = User {
            id: uuid::Uuid::now_v7(),
            phone: phone.to_owned(),
            display_name: name,
            password_hash,
            created_at: now_ms(),
        };
        match self.store.create_user(&user).await {
            Err(StoreError::Conflict(_)) => Err(ApiError::new(
                ErrorCode::Conflict,
                "this phone number is already registered",
            )),
            other => other.map_err(ApiError::from),
        }?;
        Ok(user)
    }
    /// Checks credentials and issues a token.
    pub async fn login(
        &self,
        client: ClientAddr,
        phone: &str,
        password: &str,
    ) -> Result<(String, Claims), ApiError> {
        let bad = || ApiError::new(ErrorCode::BadCredentials, "wrong phone number or password");
        let now = std::time::Instant::now();
        let address = client.to_string();
        let waiting = [
            (&self.signins, phone, "this phone number"),
            (&self.address_signins, address.as_str(), "this address"),
        ]
        .into_iter()
        .find_map(|(guard, key, what)| {
            let wait = guard.lock().expect("sign-in guard").check(key, now).err()?;
            Some((wait, what))
        });
        if let Some((wait, what)) = waiting {
            let message = format!("too many failed sign-ins for {what}; wait before trying again");
            return Err(ApiError::new(ErrorCode::RateLimited, message).retry_after(wait));
        }
        let user = self.store.user_by_phone(phone).await?;
        // An unknown phone costs a verification too: timing tells nothing.
        let hash = user
            .as_ref()
            .map_or_else(|| self.unknown_hash.clone(), |u| u.password_hash.clone());
        let hashing = self.hashing_slot(client)?;
        let Some(matched) = self.passwords.verify(password.to_owned(), hash).await else {
            return Err(pool_full("too many sign-ins at once; retry"));
        };
        drop(hashing);
        let mut guard = self.signins.lock().expect("sign-in guard");
        match user {
            Some(user) if matched => {
                guard.succeeded(phone);
                Ok(self.keys.issue(user.id))
            }
            _ => {
                let phone_locked = guard.failed(phone, now);
                drop(guard);
                let address_locked = self
                    .address_signins
                    .lock()
                    .expect("sign-in guard")
                    .failed(&address, now);
                audit::record(&self.metrics, Event::SignInFailed { phone, client });
                let locks = [(phone, phone_locked), (address.as_str(), address_locked)];
                for (key, locked) in locks {
                    if let Some(wait) = locked {
                        audit::record(&self.metrics, Event::SignInLocked { key, wait });
                    }
                }
                Err(bad())
            }
        }
    }
    /// Verifies an `Authorization: Bearer <token>` header's value.
    pub async fn authenticate_header(&self, value: Option<&str>) -> Result<Claims, ApiError> {
        let token = value
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "send Authorization: Bearer <token>",
                )
            })?;
        self.authenticate(token).await
    }
    /// Verifies a token: signature, expiry and revocation.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.keys.verify(token).map_err(|e| match e {
            AuthError::Expired => ApiError::new(ErrorCode::TokenExpired, e.to_string()),
            AuthError::Invalid => ApiError::new(ErrorCode::Unauthenticated, e.to_string()),
        })?;
        if self.store.is_revoked(&claims.jti).await? {
            return Err(ApiError::new(
                ErrorCode::TokenRevoked,
                "this token was revoked",
            ));
        }
        Ok(claims)
    }
    pub async fn logout(&self, claims: &Claims) -> Result<(), ApiError> {
        self.store.revoke_token(&claims.jti, claims.exp).await?;
        let event = Event::TokenRevoked {
            user: claims.sub,
            token_id: &claims.jti,
        };
        audit::record(&self.metrics, event);
        Ok(())
    }
    /// `self`, letting devices register as `policy` says.
    pub fn with_devices(mut self, policy: DevicePolicy) -> Self {
        self.devices = policy;
        self
    }
}
