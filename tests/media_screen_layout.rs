//! The screen's compositor, rendered to its `none` output and read back by colour: each
//! participant is a distinct solid colour from `videotestsrc`, and the pixel at the centre of
//! each region the layout gives must be that colour, for 1, 2, 3 and 4 participants and with the
//! preview on top. Also: the idle card is not black, and it changes with its text.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use roomcam::media::layout::Rect;
use roomcam::media::{DisplaySink, Screen, ScreenInput, ScreenSettings, Snapshot};

const W: u32 = 640;
const H: u32 = 360;

/// A live solid-colour source whose pictures go into `input` (a real GStreamer pipeline).
struct Feed {
    pipeline: gst::Pipeline,
}

impl Feed {
    fn start(input: ScreenInput, argb: u32, width: u32, height: u32) -> Feed {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true pattern=solid-color foreground-color={argb} \
             ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
             ! appsink name=out sync=false max-buffers=2 drop=true"
        ))
        .expect("feed pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
        let sink = pipeline
            .by_name("out")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .expect("appsink");
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    input.push(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).expect("feed plays");
        Feed { pipeline }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

const COLOURS: [(u32, (u8, u8, u8)); 5] = [
    (0xffff0000, (255, 0, 0)),
    (0xff00ff00, (0, 255, 0)),
    (0xff0000ff, (0, 0, 255)),
    (0xffffff00, (255, 255, 0)),
    (0xffff00ff, (255, 0, 255)),
];

fn close(a: (u8, u8, u8), b: (u8, u8, u8)) -> bool {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).abs();
    d(a.0, b.0) < 40 && d(a.1, b.1) < 40 && d(a.2, b.2) < 40
}

fn screen() -> Screen {
    roomcam::media::init().expect("gst");
    Screen::start(
        &ScreenSettings {
            sink: DisplaySink::None,
            width: W,
            height: H,
            fps: 30,
            ..ScreenSettings::default()
        },
        "Waiting in room1",
    )
    .expect("screen starts")
}

/// Waits (hang guard 20 s) until the composed picture satisfies `ok`.
fn wait_picture(screen: &Screen, what: &str, ok: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = screen.snapshot()
            && ok(&s)
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stats {:?}",
            screen.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn at(s: &Snapshot, r: &Rect) -> (u8, u8, u8) {
    let (x, y) = r.centre();
    s.rgb(x as u32, y as u32).expect("inside the picture")
}

#[test]
fn one_to_four_participants_and_the_preview_land_in_their_regions() {
    let screen = screen();
    let mut feeds = Vec::new();
    for n in 1..=4 {
        let input = screen.add_participant().expect("input");
        // Participants of different shapes: 16:9 and 4:3.
        let (w, h) = if n % 2 == 0 { (320, 240) } else { (320, 180) };
        feeds.push(Feed::start(input, COLOURS[n - 1].0, w, h));
        let (rects, pip) = wait_layout(&screen, n);
        assert!(pip.is_none());
        let snap = wait_picture(&screen, &format!("{n} participants"), |s| {
            rects
                .iter()
                .zip(COLOURS.iter())
                .all(|(r, (_, rgb))| close(at(s, r), *rgb))
        });
        assert_eq!((snap.width, snap.height), (W, H));
        // Nothing of the idle card shows with participants on screen: outside every region
        // (the letterbox bars) is black.
        if n == 1 {
            let r = rects[0];
            assert_eq!(
                (r.x, r.y, r.width, r.height),
                (0, 0, W, H),
                "16:9 fills 16:9"
            );
        }
        if n == 2 {
            // 4:3 in a 320x360 cell: black above and below.
            let r = rects[1];
            assert!(r.y > 0, "{r:?}");
            let above = snap.rgb(r.centre().0 as u32, (r.y / 2) as u32).unwrap();
            assert!(close(above, (0, 0, 0)), "letterbox {above:?}");
        }
    }
    assert_eq!(screen.stats().participants, 4);

    let preview = screen.add_preview().expect("preview input");
    let _pfeed = Feed::start(preview, COLOURS[4].0, 320, 240);
    let pip = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let (_, Some(p)) = screen.layout()
                && p.width == W / 4
            {
                break p;
            }
            assert!(Instant::now() < deadline, "no preview in the layout");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (rects, _) = screen.layout();
    wait_picture(&screen, "the preview on top", |s| {
        close(at(s, &pip), COLOURS[4].1) && close(at(s, &rects[0]), COLOURS[0].1)
    });
    assert!(screen.stats().preview);

    // Participants leave: the layout shrinks; the last one gone brings the idle card back.
    feeds.truncate(1);
    let (rects, _) = wait_layout(&screen, 1);
    wait_picture(&screen, "one participant again", |s| {
        close(at(s, &rects[0]), COLOURS[0].1)
    });
    feeds.clear();
    let idle = wait_picture(&screen, "the idle card after everyone left", |s| {
        !close(s.rgb(10, 10).unwrap(), (255, 0, 0)) && !close(s.rgb(10, 10).unwrap(), (0, 0, 0))
    });
    assert!(!close(idle.rgb(10, 10).unwrap(), (0, 0, 0)));
}

fn wait_layout(screen: &Screen, n: usize) -> (Vec<Rect>, Option<Rect>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = screen.layout();
        // The regions follow the pictures' shapes once each input's first picture arrived.
        if l.0.len() == n && screen.stats().shown == n {
            let (rects, pip) = l;
            {
                return (rects, pip);
            }
        }
        assert!(Instant::now() < deadline, "layout of {n} not reached");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_idle_card_is_not_black_and_changes_with_its_text() {
    let screen = screen();
    // The card's background, away from the text.
    let first = wait_picture(&screen, "the idle card", |s| {
        !close(s.rgb(5, 5).unwrap(), (0, 0, 0))
    });
    let bg = first.rgb(5, 5).unwrap();
    // The text is drawn: the middle row has pixels far from the background.
    let row_differs = |s: &Snapshot| {
        (0..s.width)
            .filter(|&x| {
                let p = s.rgb(x, s.height / 2).unwrap();
                !close(p, bg)
            })
            .count()
    };
    assert!(row_differs(&first) > 10, "no text on the card");
    let before = first.data.clone();
    screen.set_idle_text("Anna is in the room — press the button to join");
    assert_eq!(
        screen.stats().idle_text,
        "Anna is in the room — press the button to join"
    );
    wait_picture(&screen, "the new text", |s| {
        s.data != before && row_differs(s) > 10
    });
}
