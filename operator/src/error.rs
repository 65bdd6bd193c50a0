//! The shell's error type: one enum for everything a reconcile can fail on.
//! Variant names double as the `error` label of the failure metric.

/// Why a reconcile failed. Every variant is retried by the error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// Adding/removing the finalizer, or the branch it wraps, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object has no namespace (ChatCluster is namespaced; never expected).
    #[error("ChatCluster {0} has no namespace")]
    NoNamespace(String),
}

impl Error {
    /// A write refused because the object changed since it was read (409):
    /// worth retrying at once.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(e)) => e.code == 409,
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.is_conflict(),
                _ => false,
            },
            _ => false,
        }
    }

    /// Stable label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "Kube",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "Finalizer",
            },
            Error::NoNamespace(_) => "NoNamespace",
        }
    }
}
