//! Frequency of a steady tone in PCM samples: pure, used by the player's `none` audio sink so a
//! test can check that the published tone arrives at the published pitch.
//!
//! Method: upward zero crossings located to a fraction of a sample by linear interpolation; the
//! frequency is (crossings - 1) periods over the time between the first and the last crossing.
//! On a clean sine this is exact to well under 0.1 % over 100 ms; on noise or silence it returns
//! `None` (fewer than two crossings, or a signal below `min_amplitude`).
//!
//! [`level_db`] measures how strong one known frequency is (Goertzel), for several tones mixed
//! together (the speaker mix, echo against near-end speech).

/// Estimated frequency in Hz of the dominant tone in `samples` at `rate` Hz, or `None` when the
/// signal is too quiet or too short to tell.
pub fn estimate_hz(samples: &[f32], rate: u32, min_amplitude: f32) -> Option<f64> {
    let peak = samples.iter().fold(0f32, |m, &s| m.max(s.abs()));
    if samples.len() < 3 || peak < min_amplitude {
        return None;
    }
    // Hysteresis against noise: a crossing counts only after the signal went below -h.
    let h = peak * 0.1;
    let mut armed = false;
    let (mut first, mut last, mut count) = (None::<f64>, 0f64, 0u32);
    for (i, pair) in samples.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a < -h {
            armed = true;
        }
        if armed && a < 0.0 && b >= 0.0 {
            let at = i as f64 + f64::from(-a) / f64::from(b - a);
            first.get_or_insert(at);
            last = at;
            count += 1;
            armed = false;
        }
    }
    let first = first?;
    (count >= 2 && last > first).then(|| f64::from(count - 1) * f64::from(rate) / (last - first))
}

/// Level of the `hz` component of `samples` in dB relative to a full-scale sine (0 dB = amplitude
/// 1.0), by the Goertzel algorithm over the whole slice with a Hann window. Components more than
/// a few bins away (`rate / len` Hz each) do not count. Silence gives a very low number, never NaN.
pub fn level_db(samples: &[f32], rate: u32, hz: f64) -> f64 {
    let n = samples.len();
    if n < 2 || rate == 0 {
        return -200.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    let mut window_sum = 0f64;
    for (i, &x) in samples.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
        window_sum += hann;
        let s0 = f64::from(x) * hann + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A sine of amplitude A gives |X| = A * sum(window) / 2.
    let amplitude = 2.0 * power.max(0.0).sqrt() / window_sum;
    20.0 * amplitude.max(1e-10).log10()
}

/// Level of the `hz` component as heard over time: the median of [`level_db`] over consecutive
/// blocks of `block` samples. Unlike one Goertzel over the whole slice it does not depend on the
/// tone's phase staying continuous, so one dropped or repeated buffer (a glitch a listener barely
/// notices) costs one block instead of cancelling the whole measurement. A tail shorter than
/// half a block is ignored.
pub fn block_level_db(samples: &[f32], rate: u32, hz: f64, block: usize) -> f64 {
    let block = block.max(2);
    let mut levels: Vec<f64> = samples
        .chunks(block)
        .filter(|c| c.len() * 2 >= block)
        .map(|c| level_db(c, rate, hz))
        .collect();
    if levels.is_empty() {
        return -200.0;
    }
    levels.sort_by(f64::total_cmp);
    levels[levels.len() / 2]
}

/// Share (0..=1) of the consecutive blocks of `block` samples whose RMS is at least
/// `min_rms`: how much of the time something sounds. `None` for fewer than one whole block.
pub fn sounding_share(samples: &[f32], block: usize, min_rms: f32) -> Option<f64> {
    let block = block.max(1);
    let blocks: Vec<&[f32]> = samples.chunks_exact(block).collect();
    if blocks.is_empty() {
        return None;
    }
    let min_power = f64::from(min_rms) * f64::from(min_rms);
    let sounding = blocks
        .iter()
        .filter(|b| {
            b.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / block as f64 >= min_power
        })
        .count();
    Some(sounding as f64 / blocks.len() as f64)
}

/// Samples of interleaved S16 PCM, first channel only, as floats in [-1, 1).
pub fn first_channel_s16(pcm: &[u8], channels: usize) -> impl Iterator<Item = f32> + '_ {
    pcm.chunks_exact(2 * channels.max(1))
        .map(|frame| f32::from(i16::from_le_bytes([frame[0], frame[1]])) / 32768.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sounding_share_counts_blocks_above_the_level() {
        let mut x = sine(880.0, 48_000, 4_800, 0.3, 0.0);
        // The second half silent, one block in the first half too.
        for v in x.iter_mut().skip(2_400) {
            *v = 0.0;
        }
        for v in x.iter_mut().take(480) {
            *v = 0.0;
        }
        assert_eq!(sounding_share(&x, 480, 0.01), Some(0.4));
        assert_eq!(sounding_share(&x[..100], 480, 0.01), None);
        assert_eq!(sounding_share(&vec![0.001; 960], 480, 0.01), Some(0.0));
    }

    fn sine(hz: f64, rate: u32, n: usize, amp: f32, phase: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate) + phase).sin()
                    as f32
            })
            .collect()
    }

    #[test]
    fn finds_a_clean_sine() {
        for hz in [220.0, 440.0, 1000.0, 3000.0] {
            let est = estimate_hz(&sine(hz, 48_000, 4800, 0.3, 0.7), 48_000, 0.01).unwrap();
            assert!((est - hz).abs() / hz < 0.001, "{hz}: {est}");
        }
    }

    #[test]
    fn tolerates_noise() {
        let mut s = sine(440.0, 48_000, 24_000, 0.3, 0.0);
        let mut x = 7u32;
        for v in &mut s {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *v += ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.05;
        }
        let est = estimate_hz(&s, 48_000, 0.01).unwrap();
        assert!((est - 440.0).abs() < 440.0 * 0.01, "{est}");
    }

    #[test]
    fn silence_and_short_input_give_none() {
        assert_eq!(estimate_hz(&[0.0; 4800], 48_000, 0.01), None);
        assert_eq!(estimate_hz(&[0.5, -0.5], 48_000, 0.01), None);
        assert_eq!(estimate_hz(&[], 48_000, 0.01), None);
    }

    #[test]
    fn level_separates_mixed_tones() {
        let a = sine(600.0, 48_000, 24_000, 0.5, 0.3);
        let b = sine(1700.0, 48_000, 24_000, 0.05, 1.1);
        let mix: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let l600 = level_db(&mix, 48_000, 600.0);
        let l1700 = level_db(&mix, 48_000, 1700.0);
        assert!((l600 - 20.0 * 0.5f64.log10()).abs() < 0.5, "{l600}");
        assert!((l1700 - 20.0 * 0.05f64.log10()).abs() < 0.5, "{l1700}");
        // A frequency that is not there is far below both.
        assert!(level_db(&mix, 48_000, 1100.0) < l1700 - 30.0);
        assert!(level_db(&[0.0; 4800], 48_000, 600.0) < -150.0);
        assert_eq!(level_db(&[], 48_000, 600.0), -200.0);
    }

    #[test]
    fn block_level_survives_a_phase_jump_that_cancels_the_whole_window() {
        // Half a second of tone whose second half starts half a period late (a repeated
        // buffer): one Goertzel over the window loses the tone, the block median does not.
        let mut s = sine(700.0, 48_000, 12_000, 0.3, 0.0);
        s.extend(sine(700.0, 48_000, 12_000, 0.3, std::f64::consts::PI));
        let whole = level_db(&s, 48_000, 700.0);
        let blocks = block_level_db(&s, 48_000, 700.0, 960);
        assert!(whole < -25.0, "{whole}");
        assert!((blocks - 20.0 * 0.3f64.log10()).abs() < 1.0, "{blocks}");
        assert!(block_level_db(&s, 48_000, 1900.0, 960) < blocks - 30.0);
        assert!(block_level_db(&[0.0; 4800], 48_000, 700.0, 960) < -150.0);
        assert_eq!(block_level_db(&[0.1; 100], 48_000, 700.0, 960), -200.0);
    }

    #[test]
    fn reads_s16_first_channel() {
        let pcm: Vec<u8> = [1000i16, -5, -1000, 7]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mono: Vec<f32> = first_channel_s16(&pcm, 2).collect();
        assert_eq!(mono, vec![1000.0 / 32768.0, -1000.0 / 32768.0]);
    }
}
