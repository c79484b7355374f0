//! GPIO buttons and LEDs on the Linux GPIO character device (gpiocdev). Lines are given by
//! offset on the configured chip or by name (names are stable across Pi models). Buttons use
//! kernel debounce and edge events; edges become [`Button`] presses before they reach the
//! call machine. Tested against a real GPIO chip under QEMU (`docs/qemu.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, Value};
use gpiocdev::tokio::AsyncRequest;
use tokio::sync::mpsc;

use super::call::{Button, Led};
use super::config::{GpioSection, Line};

/// Why a line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("[gpio] {key}: no line named {name:?} on any chip (see `gpioinfo`)")]
    NoSuchName { key: &'static str, name: String },
    #[error("[gpio] {key}: cannot request line {line} on {chip}: {source}")]
    Request {
        key: &'static str,
        chip: PathBuf,
        line: u32,
        source: gpiocdev::Error,
    },
}

/// Kernel debounce period for buttons.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

const CONSUMER: &str = "roomcam";

fn resolve(chip: &Path, key: &'static str, line: &Line) -> Result<(PathBuf, u32), GpioError> {
    match line {
        Line::Offset(o) => Ok((chip.to_path_buf(), *o)),
        Line::Name(name) => match gpiocdev::find_named_line(name) {
            Some(found) => Ok((found.chip, found.info.offset)),
            None => Err(GpioError::NoSuchName {
                key,
                name: name.clone(),
            }),
        },
    }
}

fn bias(s: &str) -> Option<Bias> {
    match s {
        "pull-up" => Some(Bias::PullUp),
        "pull-down" => Some(Bias::PullDown),
        "disabled" => Some(Bias::Disabled),
        _ => None,
    }
}

/// The button watcher tasks (abort them to release the lines) and where presses arrive.
pub type Buttons = (
    Vec<tokio::task::JoinHandle<()>>,
    mpsc::Receiver<(Button, bool)>,
);

/// Requests every configured button; presses and releases arrive on the returned receiver.
/// Returns the running watcher tasks (abort them to release the lines).
pub fn open_buttons(cfg: &GpioSection) -> Result<Buttons, GpioError> {
    let (tx, rx) = mpsc::channel(32);
    let mut tasks = Vec::new();
    let buttons = [
        ("call_button", Button::Call, &cfg.call_button),
        ("mute_button", Button::Mute, &cfg.mute_button),
        ("camera_button", Button::Camera, &cfg.camera_button),
        ("volume_up", Button::VolumeUp, &cfg.volume_up),
        ("volume_down", Button::VolumeDown, &cfg.volume_down),
    ];
    for (key, button, line) in buttons {
        let Some(line) = line else { continue };
        let (chip, offset) = resolve(&cfg.chip, key, line)?;
        let mut b = gpiocdev::Request::builder();
        b.on_chip(&chip)
            .with_consumer(CONSUMER)
            .with_line(offset)
            .with_edge_detection(EdgeDetection::BothEdges)
            .with_debounce_period(DEBOUNCE);
        if let Some(bias) = bias(&cfg.bias) {
            b.with_bias(bias);
        }
        if cfg.active_low {
            b.as_active_low();
        }
        let req = b.request().map_err(|source| GpioError::Request {
            key,
            chip: chip.clone(),
            line: offset,
            source,
        })?;
        let req = AsyncRequest::new(req);
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match req.read_edge_event().await {
                    Ok(ev) => {
                        // Active-low is applied by the kernel: a rising edge is a press.
                        let pressed = ev.kind == EdgeKind::Rising;
                        tracing::debug!(?button, pressed, "button edge");
                        if tx.send((button, pressed)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(?button, error = %e, "button line failed; no more presses from it");
                        return;
                    }
                }
            }
        }));
    }
    Ok((tasks, rx))
}

/// The LEDs that are configured.
pub struct Leds {
    status: Option<(gpiocdev::Request, u32)>,
    camera: Option<(gpiocdev::Request, u32)>,
}

impl Leds {
    /// Requests the configured LED lines as outputs, off.
    pub fn open(cfg: &GpioSection) -> Result<Leds, GpioError> {
        let open = |key: &'static str,
                    line: &Option<Line>|
         -> Result<Option<(gpiocdev::Request, u32)>, GpioError> {
            let Some(line) = line else { return Ok(None) };
            let (chip, offset) = resolve(&cfg.chip, key, line)?;
            let req = gpiocdev::Request::builder()
                .on_chip(&chip)
                .with_consumer(CONSUMER)
                .with_line(offset)
                .as_output(Value::Inactive)
                .request()
                .map_err(|source| GpioError::Request {
                    key,
                    chip,
                    line: offset,
                    source,
                })?;
            Ok(Some((req, offset)))
        };
        Ok(Leds {
            status: open("status_led", &cfg.status_led)?,
            camera: open("camera_led", &cfg.camera_led)?,
        })
    }

    /// Switches an LED (a failure is logged, never fatal).
    pub fn set(&self, led: Led, on: bool) {
        let line = match led {
            Led::Status => &self.status,
            Led::Camera => &self.camera,
        };
        if let Some((req, offset)) = line {
            let v = if on { Value::Active } else { Value::Inactive };
            if let Err(e) = req.set_value(*offset, v) {
                tracing::warn!(?led, error = %e, "cannot set LED");
            }
        }
    }
}
