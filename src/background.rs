//! What every background loop shares: the signal that the application is
//! stopping, and a sleep that ends early when it is.

use std::time::Duration;

use tokio::sync::watch;

/// True once the application is stopping.
pub type StopSignal = watch::Receiver<bool>;

/// Sleeps `interval`; false when the application is stopping.
pub async fn tick(interval: Duration, stop: &mut StopSignal) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(interval) => !*stop.borrow(),
        _ = stop.changed() => false,
    }
}
