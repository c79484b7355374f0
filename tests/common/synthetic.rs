//! A media backend that makes synthetic frames (the callsim's numbered access units) on a
//! timer and records what it is given to play: the engine adapter tested over real sockets
//! without GStreamer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use roomcam::engine::{
    CaptureControl, EncodedFrame, MediaBackend, PlaybackSink, ReceivedFrame, TrackKind,
};
use tokio::sync::mpsc;

use super::callsim::{audio_frame, video_frame};

#[derive(Default, Clone)]
pub struct Recorded {
    pub frames: Arc<Mutex<Vec<ReceivedFrame>>>,
    pub keyframe_requests: Arc<Mutex<u32>>,
    /// Playbacks started and not yet dropped.
    pub live_playbacks: Arc<AtomicUsize>,
    /// Playback starts entered so far (a gated one counts while it waits).
    pub playback_starts: Arc<AtomicUsize>,
    /// Playback starts that returned a playback.
    pub playbacks_made: Arc<AtomicUsize>,
}

/// Holds playback starts until opened: a pipeline start that takes as long as the test wants
/// (as a GStreamer start does on a slow board or under emulation).
#[derive(Default, Clone)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Opens the gate when the returned guard drops: a failing test does not leave a thread
    /// waiting on it forever (which would hang the test instead of failing it).
    pub fn opened_on_drop(&self) -> impl Drop + use<> {
        struct Opener(Gate);
        impl Drop for Opener {
            fn drop(&mut self) {
                self.0.open();
            }
        }
        Opener(self.clone())
    }

    fn wait(&self) {
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}

pub struct SyntheticBackend {
    pub rec: Recorded,
    /// When set, `start_playback` blocks (the calling thread) until the gate opens.
    pub playback_gate: Option<Gate>,
}

impl SyntheticBackend {
    pub fn new(rec: Recorded) -> Self {
        SyntheticBackend {
            rec,
            playback_gate: None,
        }
    }
}

struct Capture {
    task: tokio::task::JoinHandle<()>,
    key: Arc<Mutex<bool>>,
    rec: Recorded,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CaptureControl for Capture {
    fn request_keyframe(&mut self) {
        *self.key.lock().unwrap() = true;
        *self.rec.keyframe_requests.lock().unwrap() += 1;
    }
    fn set_target_bitrate(&mut self, _bps: u64) {}
}

struct Playback {
    rec: Recorded,
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.rec.live_playbacks.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PlaybackSink for Playback {
    fn push(&mut self, frame: &ReceivedFrame) -> bool {
        self.rec.frames.lock().unwrap().push(frame.clone());
        false
    }
}

impl MediaBackend for SyntheticBackend {
    fn start_capture(
        &mut self,
        stream_id: &str,
        frames: mpsc::Sender<EncodedFrame>,
    ) -> Result<Box<dyn CaptureControl>, String> {
        let key = Arc::new(Mutex::new(true));
        let k = key.clone();
        let stream_id = stream_id.to_string();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut video = tokio::time::interval(Duration::from_micros(33_333));
            let mut audio = tokio::time::interval(Duration::from_millis(20));
            let mut n = 0u32;
            loop {
                let f = tokio::select! {
                    _ = video.tick() => {
                        let force = std::mem::take(&mut *k.lock().unwrap());
                        let kf = force || n.is_multiple_of(60);
                        let f = EncodedFrame { stream_id: stream_id.clone(), kind: TrackKind::Video, pts: start.elapsed(), data: video_frame(n, kf) };
                        n += 1;
                        f
                    }
                    _ = audio.tick() => {
                        let ms = start.elapsed().as_millis() as u32;
                        EncodedFrame { stream_id: stream_id.clone(), kind: TrackKind::Audio, pts: start.elapsed(), data: audio_frame(ms) }
                    }
                };
                if frames.send(f).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::new(Capture {
            task,
            key,
            rec: self.rec.clone(),
        }))
    }

    fn start_playback(&mut self, _stream_id: &str) -> Result<Box<dyn PlaybackSink>, String> {
        self.rec.playback_starts.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.playback_gate {
            gate.wait();
        }
        self.rec.live_playbacks.fetch_add(1, Ordering::SeqCst);
        self.rec.playbacks_made.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Playback {
            rec: self.rec.clone(),
        }))
    }
}
