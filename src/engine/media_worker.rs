//! The media worker: the one thread that starts and stops GStreamer pipelines for the engine.
//!
//! Starting a pipeline takes tens of milliseconds on a PC, seconds on a slow board and up to
//! twenty seconds under emulation; stopping one waits for its threads. Done on the engine's
//! event loop, that time stalls signalling, ICE and every timer (a login times out because a
//! decoder was being built). So the runtime hands each start and stop to this thread and goes
//! on; results come back on a channel it polls like any other input.
//!
//! One thread, jobs in order: a stop queued before a start has released its device (camera,
//! speaker) before the start opens it. The backend lives on this thread; it is dropped here,
//! after the last job, when the runtime goes away.

use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, oneshot};

use super::runtime::{CaptureControl, EncodedFrame, MediaBackend, PlaybackSink};

/// What a start produced, with the generation the runtime gave the request (a result for a
/// request that was cancelled meanwhile is retired, not used).
pub(crate) enum Started {
    Capture {
        stream_id: String,
        generation: u64,
        result: Result<Box<dyn CaptureControl>, String>,
    },
    Playback {
        stream_id: String,
        generation: u64,
        result: Result<Box<dyn PlaybackSink>, String>,
    },
    Preview {
        generation: u64,
        result: Result<Box<dyn Send>, String>,
    },
}

enum Job {
    Capture {
        stream_id: String,
        generation: u64,
        frames: mpsc::Sender<EncodedFrame>,
    },
    Playback {
        stream_id: String,
        generation: u64,
    },
    Preview {
        generation: u64,
    },
    /// Drop a running pipeline (its guard) here, not on the event loop.
    Retire(Box<dyn Send>),
    /// Answer once every job before this one is done.
    Flush(oneshot::Sender<()>),
}

/// The runtime's handle on the worker thread. Dropping it lets the thread finish the queued
/// jobs, drop the backend and end.
pub(crate) struct MediaWorker {
    jobs: std_mpsc::Sender<Job>,
}

impl MediaWorker {
    /// Starts the thread. Must be called inside a tokio runtime: the backend may spawn tasks
    /// (frame forwarding) from its starts, and they run on that runtime.
    pub(crate) fn spawn(
        mut backend: Box<dyn MediaBackend>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<Started>)> {
        let (jobs, job_rx) = std_mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("roomcam-media".into())
            .spawn(move || {
                let _runtime = handle.enter();
                while let Ok(job) = job_rx.recv() {
                    let started = match job {
                        Job::Capture {
                            stream_id,
                            generation,
                            frames,
                        } => {
                            let result = backend.start_capture(&stream_id, frames);
                            Started::Capture {
                                stream_id,
                                generation,
                                result,
                            }
                        }
                        Job::Playback {
                            stream_id,
                            generation,
                        } => {
                            let result = backend.start_playback(&stream_id);
                            Started::Playback {
                                stream_id,
                                generation,
                                result,
                            }
                        }
                        Job::Preview { generation } => Started::Preview {
                            generation,
                            result: backend.start_preview(),
                        },
                        Job::Retire(guard) => {
                            drop(guard);
                            continue;
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                            continue;
                        }
                    };
                    // The runtime is gone: what was started is dropped here, on this thread.
                    let _ = done_tx.send(started);
                }
                drop(backend);
            })?;
        Ok((MediaWorker { jobs }, done_rx))
    }

    fn send(&self, job: Job) {
        if let Err(std_mpsc::SendError(job)) = self.jobs.send(job) {
            // Only after the thread panicked: a retired pipeline is dropped here rather than lost.
            tracing::error!("the media worker thread is gone");
            drop(job);
        }
    }

    pub(crate) fn start_capture(
        &self,
        stream_id: &str,
        generation: u64,
        frames: mpsc::Sender<EncodedFrame>,
    ) {
        self.send(Job::Capture {
            stream_id: stream_id.to_string(),
            generation,
            frames,
        });
    }

    pub(crate) fn start_playback(&self, stream_id: &str, generation: u64) {
        self.send(Job::Playback {
            stream_id: stream_id.to_string(),
            generation,
        });
    }

    pub(crate) fn start_preview(&self, generation: u64) {
        self.send(Job::Preview { generation });
    }

    /// Stops a running pipeline on the worker thread (in order with the starts).
    pub(crate) fn retire(&self, guard: Box<dyn Send>) {
        self.send(Job::Retire(guard));
    }

    /// Resolves once every job queued so far is done.
    pub(crate) fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Flush(tx));
        rx
    }
}
