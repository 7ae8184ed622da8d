//! A connection of its own that `LISTEN`s on PostgreSQL channels.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::{pg_config, StoreError};

/// One notification: its channel and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

/// Notifications of the channels listened on, until the connection is lost.
pub struct Listener {
    // Kept: dropping the client closes the connection.
    _client: tokio_postgres::Client,
    received: mpsc::UnboundedReceiver<Notification>,
    driver: JoinHandle<()>,
}

impl Listener {
    /// Connects and listens; notifications sent from now on are received.
    pub async fn connect(database_url: &str, channels: &[&str]) -> Result<Listener, StoreError> {
        let config = pg_config(database_url)?;
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (sender, received) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        let notification = Notification {
                            channel: notification.channel().to_string(),
                            payload: notification.payload().to_string(),
                        };
                        if sender.send(notification).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("listening connection: {e}");
                        break;
                    }
                }
            }
        });
        let listen: String = channels
            .iter()
            .map(|channel| format!("LISTEN {channel};"))
            .collect();
        if let Err(e) = client.batch_execute(&listen).await {
            driver.abort();
            return Err(e.into());
        }
        Ok(Listener {
            _client: client,
            received,
            driver,
        })
    }

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

impl Drop for Listener {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
