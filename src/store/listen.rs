//! A connection of its own that `LISTEN`s on PostgreSQL channels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::{Endpoint, Pool, StoreError};

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
    /// Its number in the counter given to `Listener::connect_counting`,
    /// taken when it arrived.
    pub sequence: u64,
}

/// The listening connection (usable for queries too) and what it receives.
pub struct Listener {
    pub client: tokio_postgres::Client,
    pub notifications: Notifications,
}

/// Notifications of the channels listened on, until the connection is lost.
pub struct Notifications {
    received: mpsc::UnboundedReceiver<Notification>,
    driver: JoinHandle<()>,
}

impl Listener {
    /// Connects and listens; notifications sent from now on are received.
    pub async fn connect(endpoint: &Endpoint, channels: &[&str]) -> Result<Listener, StoreError> {
        Listener::connect_counting(endpoint, channels, Arc::default()).await
    }

    /// As `connect`, numbering the notifications as they arrive with
    /// `counter` (which may span several connections).
    pub async fn connect_counting(
        endpoint: &Endpoint,
        channels: &[&str],
        counter: Arc<AtomicU64>,
    ) -> Result<Listener, StoreError> {
        let (client, mut connection) = endpoint.connect_raw().await?;
        let (sender, received) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        let notification = Notification {
                            channel: notification.channel().to_string(),
                            payload: notification.payload().to_string(),
                            sequence: counter.fetch_add(1, Ordering::SeqCst) + 1,
                        };
                        if sender.send(notification).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("listening connection: {}", crate::domain::ErrorChain(&e));
                        break;
                    }
                }
            }
        });
        let notifications = Notifications { received, driver };
        let listen: String = channels
            .iter()
            .map(|channel| format!("LISTEN {channel};"))
            .collect();
        client.batch_execute(&listen).await?;
        Ok(Listener {
            client,
            notifications,
        })
    }
}

impl Notifications {
    /// The next notification; an error when the connection is lost.
    pub async fn next(&mut self) -> Result<Notification, StoreError> {
        self.received
            .recv()
            .await
            .ok_or_else(|| StoreError::Other("listening connection closed".into()))
    }

    /// A notification already received, without waiting.
    pub fn try_next(&mut self) -> Option<Notification> {
        self.received.try_recv().ok()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Whether a notification sent through `pool` reaches a connection
/// listening on `listen` within `wait`. It does not through a transaction
/// pooler: the `LISTEN` ran on whichever server connection the pooler lent
/// for it, and that one is lent to others afterwards.
pub async fn notifications_arrive(
    pool: &Pool,
    listen: &Endpoint,
    wait: std::time::Duration,
) -> Result<bool, StoreError> {
    let channel = format!("playgate_check_{}", uuid::Uuid::new_v4().simple());
    let Listener {
        client: _client,
        mut notifications,
    } = Listener::connect(listen, &[&channel]).await?;
    let client = pool.get().await?;
    super::policy::notify(&client, &channel, "check").await?;
    Ok(tokio::time::timeout(wait, notifications.next())
        .await
        .is_ok_and(|received| received.is_ok()))
}
