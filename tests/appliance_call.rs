//! The appliance's call state machine on simulated time: scripted button presses and room
//! events, with presence on and off, and the LEDs.

use std::time::{Duration, Instant};

use roomcam::appliance::call::{Action, Button, CallMachine, CallPolicy, Input, Led};
use roomcam::appliance::status::CallState;

struct Sim {
    m: CallMachine,
    now: Instant,
    actions: Vec<Action>,
}

impl Sim {
    fn new(policy: CallPolicy) -> Sim {
        let now = Instant::now();
        let mut s = Sim {
            m: CallMachine::new(now, policy),
            now,
            actions: vec![],
        };
        s.drain();
        s
    }
    fn drain(&mut self) {
        while let Some(a) = self.m.poll_action() {
            self.actions.push(a);
        }
    }
    fn input(&mut self, i: Input) {
        self.m.handle_input(self.now, i);
        self.drain();
    }
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.m.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.m.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.m.handle_timeout(self.now);
        self.drain();
    }
    fn press(&mut self, b: Button, hold: Duration) {
        self.input(Input::Button {
            button: b,
            pressed: true,
        });
        self.advance(hold);
        self.input(Input::Button {
            button: b,
            pressed: false,
        });
    }
    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
            .into_iter()
            .filter(|a| {
                !matches!(
                    a,
                    Action::Led {
                        led: Led::Status,
                        ..
                    }
                )
            })
            .collect()
    }
    fn stream(&mut self, id: &str) {
        self.input(Input::StreamAdded {
            stream_id: id.into(),
            user_name: format!("{id} user"),
        });
    }
}

fn short() -> Duration {
    Duration::from_millis(150)
}

#[test]
fn auto_join_publishes_and_plays_everything_then_button_ends_the_call() {
    let mut s = Sim::new(CallPolicy {
        auto_join: true,
        presence: true,
        ..Default::default()
    });
    assert_eq!(s.take(), vec![Action::Login]);
    assert_eq!(s.m.state(), CallState::Joining);
    s.stream("anna");
    s.input(Input::LoggedIn);
    assert_eq!(s.m.state(), CallState::InCall);
    assert_eq!(
        s.take(),
        vec![Action::StartPublishing, Action::Play("anna".into())]
    );
    s.stream("ben");
    assert_eq!(s.take(), vec![Action::Play("ben".into())]);
    // a DELETEd stream stops playing, as the seed asks
    s.input(Input::StreamRemoved {
        stream_id: "anna".into(),
    });
    assert_eq!(s.take(), vec![Action::StopPlay("anna".into())]);
    // camera LED: exactly while video is published
    s.input(Input::Publishing(true));
    assert!(s.actions.contains(&Action::Led {
        led: Led::Camera,
        on: true
    }));
    s.take();
    // press: end the call, stay in the room (presence)
    s.press(Button::Call, short());
    assert_eq!(s.m.state(), CallState::Standby);
    let a = s.take();
    assert!(
        a.contains(&Action::StopPublishing) && a.contains(&Action::StopPlay("ben".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&Action::Led {
            led: Led::Camera,
            on: false
        }),
        "{a:?}"
    );
    assert!(!a.contains(&Action::Logout));
    // press again: back in the call, playing what is there
    s.press(Button::Call, short());
    assert_eq!(s.m.state(), CallState::InCall);
    assert_eq!(
        s.take(),
        vec![Action::StartPublishing, Action::Play("ben".into())]
    );
}

#[test]
fn without_presence_the_button_logs_in_and_out() {
    let mut s = Sim::new(CallPolicy {
        auto_join: false,
        presence: false,
        ..Default::default()
    });
    assert!(s.take().is_empty(), "idle: not logged in");
    assert_eq!(s.m.state(), CallState::Idle);
    s.press(Button::Call, short());
    assert_eq!(s.take(), vec![Action::Login]);
    s.stream("anna");
    s.input(Input::LoggedIn);
    assert_eq!(
        s.take(),
        vec![Action::StartPublishing, Action::Play("anna".into())]
    );
    s.press(Button::Call, short());
    assert_eq!(
        s.take(),
        vec![
            Action::StopPublishing,
            Action::StopPlay("anna".into()),
            Action::Logout
        ]
    );
    assert_eq!(s.m.state(), CallState::Idle);
}

#[test]
fn presence_without_auto_join_waits_in_standby_showing_who_is_there() {
    let mut s = Sim::new(CallPolicy {
        auto_join: false,
        presence: true,
        ..Default::default()
    });
    assert_eq!(s.take(), vec![Action::Login]);
    s.input(Input::LoggedIn);
    assert_eq!(s.m.state(), CallState::Standby);
    s.stream("anna");
    assert!(s.take().is_empty(), "standby does not play");
    assert_eq!(s.m.remote_names().collect::<Vec<_>>(), vec!["anna user"]);
    s.press(Button::Call, short());
    assert_eq!(
        s.take(),
        vec![Action::StartPublishing, Action::Play("anna".into())]
    );
}

#[test]
fn long_press_reloads_the_config_and_does_not_toggle() {
    let mut s = Sim::new(CallPolicy::default());
    s.input(Input::LoggedIn);
    s.take();
    s.input(Input::Button {
        button: Button::Call,
        pressed: true,
    });
    s.advance(Duration::from_millis(4900));
    assert!(s.take().is_empty());
    s.advance(Duration::from_millis(200));
    assert_eq!(
        s.take(),
        vec![Action::ReloadConfig],
        "fires while still held"
    );
    s.advance(Duration::from_secs(3));
    s.input(Input::Button {
        button: Button::Call,
        pressed: false,
    });
    assert!(
        s.take().is_empty(),
        "the release after a long press does nothing"
    );
    assert_eq!(s.m.state(), CallState::InCall);
    // the adapter reloads, then restarts the call
    s.m.restart(s.now, CallPolicy::default());
    s.drain();
    let a = s.take();
    assert!(
        a.contains(&Action::StopPublishing)
            && a.contains(&Action::Logout)
            && a.ends_with(&[Action::Login]),
        "{a:?}"
    );
}

#[test]
fn mute_camera_and_volume_buttons() {
    let mut s = Sim::new(CallPolicy::default());
    s.input(Input::LoggedIn);
    s.input(Input::Publishing(true));
    s.take();
    s.press(Button::Mute, short());
    s.press(Button::Camera, short());
    s.press(Button::VolumeUp, short());
    s.press(Button::VolumeDown, short());
    let a = s.take();
    assert_eq!(
        a,
        vec![
            Action::SetMicMuted(true),
            Action::SetCameraOff(true),
            Action::Led {
                led: Led::Camera,
                on: false
            },
            Action::Volume(1),
            Action::Volume(-1)
        ]
    );
    assert!(s.m.muted() && s.m.camera_off());
    s.press(Button::Camera, short());
    assert_eq!(
        s.take(),
        vec![
            Action::SetCameraOff(false),
            Action::Led {
                led: Led::Camera,
                on: true
            }
        ]
    );
}

#[test]
fn errors_retry_and_reconnects_only_change_the_lights() {
    let mut s = Sim::new(CallPolicy {
        retry_after: Duration::from_secs(10),
        ..Default::default()
    });
    s.take();
    s.input(Input::Disconnected {
        error_code: 1005003,
    });
    assert_eq!(s.m.state(), CallState::Error);
    s.advance(Duration::from_secs(9));
    assert!(s.take().is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(s.take(), vec![Action::Login]);
    s.input(Input::LoggedIn);
    s.take();
    s.input(Input::Reconnecting);
    assert_eq!(s.m.state(), CallState::Joining);
    assert!(s.take().is_empty(), "the engine resumes by itself");
    s.input(Input::LoggedIn);
    assert_eq!(s.m.state(), CallState::InCall);
    assert!(s.take().is_empty(), "nothing asked twice");
}

#[test]
fn status_led_patterns() {
    let mut s = Sim::new(CallPolicy::default());
    // joining: fast blink, 250 ms on / 250 ms off
    let leds = |s: &Sim| {
        s.actions
            .iter()
            .filter_map(|a| match a {
                Action::Led {
                    led: Led::Status,
                    on,
                } => Some(*on),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    s.actions.clear();
    s.advance(Duration::from_millis(1000));
    let l = leds(&s);
    assert!(l.len() >= 3 && l.len() <= 5, "{l:?}");
    // in a call: steady on
    s.input(Input::LoggedIn);
    s.actions.clear();
    s.advance(Duration::from_secs(3));
    assert!(leds(&s).len() <= 1, "{:?}", leds(&s));
    // error: a short flash every second
    s.input(Input::Disconnected { error_code: 1 });
    s.actions.clear();
    s.advance(Duration::from_secs(3));
    let l = leds(&s);
    assert!(l.len() >= 5 && l.len() <= 7, "{l:?}");
}
