//! Media benchmark: publish -> play in process (no network) on the test sources, per size:
//! CPU of the whole process (publisher + player) from /proc/self/stat over a 10 s run, mean
//! encode time per frame, glass-to-glass latency (frame stamp capture time -> decoded picture
//! due at the sink) p50/p95, and peak RSS. `cargo bench --bench media`; `MEDIA_BENCH_SECS` and
//! `MEDIA_PLAYOUT_MS` override the run length and the player's jitter allowance.

use std::time::{Duration, Instant};

use roomcam::media::{
    AudioCapture, AudioPlayback, AudioSettings, DisplaySink, EncoderChoice, FrameKind,
    PlayPipeline, PlaySettings, PublishPipeline, PublishSettings, VideoSettings, VideoSource,
};

fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat: utime and stime in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn run(width: u32, height: u32, fps: u32, kbps: u32, secs: u64, playout_ms: u64) {
    let player = PlayPipeline::new(&PlaySettings {
        display: DisplaySink::None,
        playback: AudioPlayback::None,
        playout_delay: Duration::from_millis(playout_ms),
    })
    .expect("player");
    player.start().expect("player starts");
    let (publisher, mut rx) = PublishPipeline::new(&PublishSettings {
        video: VideoSettings {
            source: VideoSource::Test,
            width,
            height,
            fps,
            encoder: EncoderChoice::Auto,
            max_bitrate_kbps: kbps,
        },
        audio: AudioSettings {
            capture: AudioCapture::Test,
            ..AudioSettings::default()
        },
        channel_capacity: 256,
    })
    .expect("publisher");
    publisher.start().expect("publisher starts");

    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(secs);
    let start = Instant::now();
    let (mut cpu0, mut t0) = (None, None);
    let (mut encode_sum, mut encode_n) = (0u64, 0u64);
    let mut next_sample = start + warmup + Duration::from_secs(1);
    let mut send_ages = Vec::new();
    while start.elapsed() < warmup + measure {
        if t0.is_none() && start.elapsed() >= warmup {
            cpu0 = Some(cpu_seconds());
            t0 = Some(Instant::now());
        }
        match rx.try_recv() {
            Ok(f) => {
                if let (Some(_), FrameKind::Video, Some(c)) = (t0, f.kind, f.capture_unix_ms) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    send_ages.push(now.saturating_sub(c));
                }
                let r = match f.kind {
                    FrameKind::Video => player.push_video(f.data, f.pts),
                    FrameKind::Audio => player.push_audio(f.data, f.pts),
                };
                r.expect("push");
            }
            Err(_) => std::thread::sleep(Duration::from_micros(500)),
        }
        if Instant::now() >= next_sample {
            if let Some(us) = publisher.stats().encode_time_us_mean {
                encode_sum += us;
                encode_n += 1;
            }
            next_sample += Duration::from_secs(1);
        }
    }
    let wall = t0.map(|t| t.elapsed().as_secs_f64()).unwrap_or(1.0);
    let cpu = cpu_seconds() - cpu0.unwrap_or(0.0);
    let p = publisher.stats();
    let s = player.stats();
    send_ages.sort_unstable();
    let pct = |v: &[u64], q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
    };
    println!(
        "{width}x{height}@{fps} {kbps} kbps, playout {playout_ms} ms, {secs} s: cpu {:.0}% of one core, \
         encode {:.1} ms/frame, capture->encoded p50 {:?} p95 {:?} ms, glass-to-glass p50 {:?} p95 {:?} ms, \
         player latency {:?} ms, video render lag {:?} ms, decoded {}/{} video, {} audio, late {}, \
         dropped {}+{}, peak RSS {:.0} MB, encoder {}",
        100.0 * cpu / wall,
        encode_sum as f64 / encode_n.max(1) as f64 / 1000.0,
        pct(&send_ages, 0.5),
        pct(&send_ages, 0.95),
        s.latency_ms_p50,
        s.latency_ms_p95,
        s.pipeline_latency_ms,
        s.video_render_lag_ms.map(|v| v.round()),
        s.video_frames_decoded,
        p.video_frames_sent,
        s.audio_frames_decoded,
        s.late_frames,
        p.frames_dropped,
        s.dropped_frames,
        peak_rss_mb(),
        p.encoder,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks a size.
    let secs = std::env::var("MEDIA_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let playout: u64 = std::env::var("MEDIA_PLAYOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PlaySettings::default().playout_delay.as_millis() as u64);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    roomcam::media::init().expect("gstreamer");
    for (w, h, kbps) in [(640, 480, 1000), (1280, 720, 2500)] {
        let name = format!("{w}x{h}");
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        run(w, h, 30, kbps, secs, playout);
    }
}
