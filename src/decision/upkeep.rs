//! The loops that keep sessions true without a request asking: timing out
//! sessions nobody refreshes, writing the refreshes answered from memory,
//! and forgetting sessions ended through another replica.

use std::sync::Arc;
use std::time::Duration;

use super::engine::HEARTBEAT_INTERVAL;
use super::Engine;
use crate::background::{tick, StopSignal};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::listen::Listener;
use crate::store::{sessions, Endpoint, Pool};

/// Channel of `sql/V6__session_ended_notify.sql`.
const SESSION_ENDED_CHANNEL: &str = "playgate_session_ended";
const LISTEN_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Ends sessions past their expiry (`timeout`), moves ended ones to the
/// history and drops history days past `PLAYGATE_HISTORY_DAYS`.
pub async fn sweep_sessions(
    pool: Pool,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    mut stop: StopSignal,
) {
    while tick(settings.sweep_interval, &mut stop).await {
        let result = async {
            let mut client = pool.get().await?;
            sessions::sweep(
                &mut client,
                settings.history_days,
                settings.session_duration,
            )
            .await
        }
        .await;
        match result {
            Ok(swept) => {
                metrics.sessions_ended("timeout", swept.timed_out.min(u32::MAX.into()) as u32);
                metrics.sessions_ended("kicked", swept.barred.min(u32::MAX.into()) as u32);
                for (stream, seconds) in &swept.watched_by_stream {
                    metrics.watched(stream, *seconds);
                }
                if swept.timed_out > 0
                    || swept.barred > 0
                    || swept.moved > 0
                    || swept.partitions_dropped > 0
                {
                    log::debug!(
                        "sweep: {} sessions timed out, {} ended by an expired account or token or a change a replica had not heard of yet, {} ended sessions moved to the history, {} history days dropped",
                        swept.timed_out,
                        swept.barred,
                        swept.moved,
                        swept.partitions_dropped
                    );
                }
            }
            Err(e) => log::warn!("session sweep failed: {e}"),
        }
    }
}

/// Refreshes answered from memory reach PostgreSQL in one batch per interval.
pub async fn write_heartbeats(engine: Arc<Engine>, mut stop: StopSignal) {
    while tick(HEARTBEAT_INTERVAL, &mut stop).await {
        if let Err(e) = engine.write_heartbeats().await {
            log::warn!("writing heartbeats failed: {e}");
        }
    }
}

/// Denials counted in memory go to the database every `interval`, and once
/// more when the application stops.
pub async fn write_denial_counts(engine: Arc<Engine>, interval: Duration, mut stop: StopSignal) {
    loop {
        let running = tick(interval, &mut stop).await;
        if let Err(e) = engine.write_denial_counts().await {
            log::warn!("writing denial counts failed: {e}");
        }
        if !running {
            return;
        }
    }
}

/// Sessions ended through another replica (or by the sweeper), or bound to
/// their player (sql/V11), are forgotten here as soon as PostgreSQL announces
/// it: their next request is decided by the database.
pub async fn follow_session_ends(engine: Arc<Engine>, listen: Endpoint, mut stop: StopSignal) {
    loop {
        match Listener::connect(&listen, &[SESSION_ENDED_CHANNEL]).await {
            Ok(Listener {
                mut notifications, ..
            }) => {
                // Ends announced while no one listened are unknown.
                engine.forget_all_sessions();
                loop {
                    tokio::select! {
                        received = notifications.next() => match received {
                            Ok(ended) => match ended.payload.parse() {
                                Ok(session_id) => engine.forget_session(session_id),
                                Err(_) => log::warn!("unexpected session end payload"),
                            },
                            Err(e) => {
                                log::warn!("session end listener: {e}; reconnecting");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(e) => log::warn!("session end listener: {e}; reconnecting"),
        }
        if !tick(LISTEN_RECONNECT_DELAY, &mut stop).await {
            return;
        }
    }
}
