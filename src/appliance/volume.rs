//! Speaker volume through the ALSA mixer: the first playback volume control of the card that
//! plays (`Master`, `PCM`, `Speaker`, `Headphone`, else the first with a playback volume).

use alsa::mixer::{Mixer, SelemChannelId, SelemId};

/// One step of the volume buttons, in percent of the control's range.
pub const STEP_PERCENT: i64 = 5;

/// The mixer device for a playback setting: `alsa:hw:1,0` → `hw:1`, a PCM naming its card
/// (`alsa:plughw:CARD=Device,DEV=0`, `alsa:hdmi:CARD=vc4hdmi0,DEV=0`) → `hw:CARD=<id>`, else
/// `default`.
pub fn mixer_device(playback: &str) -> String {
    if let Some(card) = playback
        .strip_prefix("alsa:")
        .and_then(|pcm| pcm.split_once("CARD="))
        .map(|(_, rest)| rest.split(',').next().unwrap_or(""))
        .filter(|c| !c.is_empty())
    {
        return format!("hw:CARD={card}");
    }
    match playback.strip_prefix("alsa:") {
        Some(pcm) => {
            let card = pcm
                .trim_start_matches("plughw:")
                .trim_start_matches("hw:")
                .split(',')
                .next()
                .unwrap_or("0");
            if pcm.starts_with("hw:") || pcm.starts_with("plughw:") {
                format!("hw:{card}")
            } else {
                "default".into()
            }
        }
        None => "default".into(),
    }
}

/// The mixer device of the speaker `[audio] playback` plays on: for `auto`, the card the device
/// chooser picks (as the speaker does), else ALSA's `default`.
pub fn playback_mixer_device(playback: &str) -> String {
    if playback != "auto" {
        return mixer_device(playback);
    }
    let listing = crate::devices::discover();
    match crate::devices::choose(&listing, &crate::devices::Wanted::default()).playback {
        Some(pcm) => mixer_device(&format!("alsa:{pcm}")),
        None => "default".into(),
    }
}

/// Changes the volume by `steps` (positive = louder); returns the new level in percent.
pub fn change(device: &str, steps: i32) -> Result<i64, String> {
    let mixer = Mixer::new(device, false).map_err(|e| format!("mixer {device}: {e}"))?;
    let preferred = ["Master", "PCM", "Speaker", "Headphone"];
    let selem = preferred
        .iter()
        .find_map(|n| mixer.find_selem(&SelemId::new(n, 0)))
        .or_else(|| {
            mixer
                .iter()
                .filter_map(alsa::mixer::Selem::new)
                .find(|s| s.has_playback_volume())
        })
        .ok_or_else(|| format!("mixer {device}: no playback volume control"))?;
    let (min, max) = selem.get_playback_volume_range();
    let now = selem
        .get_playback_volume(SelemChannelId::FrontLeft)
        .or_else(|_| selem.get_playback_volume(SelemChannelId::mono()))
        .map_err(|e| format!("mixer {device}: {e}"))?;
    let step = ((max - min) * STEP_PERCENT / 100).max(1);
    let new = (now + step * i64::from(steps)).clamp(min, max);
    selem
        .set_playback_volume_all(new)
        .map_err(|e| format!("mixer {device}: {e}"))?;
    Ok(if max > min {
        (new - min) * 100 / (max - min)
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixer_device_follows_the_playback_card() {
        assert_eq!(mixer_device("auto"), "default");
        assert_eq!(mixer_device("alsa:hw:1,0"), "hw:1");
        assert_eq!(mixer_device("alsa:plughw:2,0"), "hw:2");
        assert_eq!(mixer_device("alsa:default"), "default");
        assert_eq!(
            mixer_device("alsa:plughw:CARD=Device,DEV=0"),
            "hw:CARD=Device"
        );
        assert_eq!(
            mixer_device("alsa:hdmi:CARD=vc4hdmi0,DEV=0"),
            "hw:CARD=vc4hdmi0"
        );
    }

    #[test]
    fn a_missing_card_is_an_error_not_a_panic() {
        assert!(change("hw:97", 1).is_err());
    }
}
