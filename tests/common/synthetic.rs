//! A media backend that makes synthetic frames (the callsim's numbered access units) on a
//! timer and records what it is given to play: the engine adapter tested over real sockets
//! without GStreamer.

use std::sync::{Arc, Mutex};
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
}

pub struct SyntheticBackend {
    pub rec: Recorded,
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
        Ok(Box::new(Playback {
            rec: self.rec.clone(),
        }))
    }
}
