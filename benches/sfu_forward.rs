//! SFU forwarding cost: 1 publisher -> N players (N = 1, 10, 50, 200) at ~2 Mbit/s H.264 + Opus.
//!
//! Load generator: the test suite's str0m clients (tests/common) on a simulated network with
//! virtual time. The publisher writes synthetic H.264 RTP (7 x 1150-byte packets per frame,
//! 30 fps = 1.93 Mbit/s of payload, a keyframe every 2 s) and Opus (80 bytes every 20 ms); N
//! players receive, decrypt, and send their RTCP/TWCC feedback. Everything runs in this one
//! thread as fast as it can; only the time spent inside the SFU's calls (`handle_receive`,
//! `handle_timeout`, `poll_output`, `handle_command`) is counted, so the clients' own cost is
//! excluded. Those calls are timed with the wall clock; on a shared machine the thread also
//! waits for a CPU, so the time is scaled by the share of the run the thread was on a CPU
//! (`/proc/thread-self/schedstat`), which gives CPU time on one core.
//!
//! Run: `cargo bench --bench sfu_forward` (or `scripts/bench-sfu.sh`). Arguments: the player
//! counts (default `1 10 50 200`) and `--secs S` of media per run (default 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::sfu_net::Net;
use roomcam::sfu::SfuConfig;

const PACKETS_PER_FRAME: u16 = 7;
const PACKET_BYTES: usize = 1150;

/// Cost of one `send_to` of a 1200-byte datagram on loopback (the adapter's per-packet
/// syscall, which the SFU measurement above does not include).
fn udp_send_cost() -> Duration {
    use std::net::UdpSocket;
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let buf = [0x80u8; 1200];
    let n = 200_000u32;
    let sched_before = schedstat();
    let start = Instant::now();
    for i in 0..n {
        let _ = tx.send_to(&buf, to);
        if i % 256 == 0 {
            // keep the receive buffer from filling (drain without counting it)
            rx.set_nonblocking(true).ok();
            let mut b = [0u8; 1500];
            while rx.recv_from(&mut b).is_ok() {}
        }
    }
    let elapsed = start.elapsed();
    let share = match (sched_before, schedstat()) {
        (Some((c0, w0)), Some((c1, w1))) if c1 > c0 => {
            (c1 - c0) as f64 / ((c1 - c0) + (w1 - w0)) as f64
        }
        _ => 1.0,
    };
    elapsed.mul_f64(share) / n
}

/// This thread's (time on a CPU, time waiting for one) in ns, from the scheduler's accounting.
fn schedstat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

fn run(players: usize, secs: u64, send_cost: Duration) {
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let ids: Vec<usize> = (0..players).map(|_| net.add_client()).collect();
    net.publish(publisher, "cam");
    for p in &ids {
        net.play(*p, "cam");
    }
    let connected = net.run_until(Duration::from_secs(10), |n| {
        n.clients.iter().all(|c| c.connected)
    });
    assert!(connected, "not all clients connected");
    net.start_media(publisher, PACKETS_PER_FRAME, PACKET_BYTES, Some(60));
    // Warm up one second (keyframe, BWE ramp), then measure.
    net.run_for(Duration::from_secs(1));
    let sfu_before = net.sfu_time;
    let sched_before = schedstat();
    let wall = Instant::now();
    let received_before: usize = ids.iter().map(|p| net.clients[*p].received.len()).sum();
    let transmits_before: u64 = net.sent_to.values().sum();
    net.run_for(Duration::from_secs(secs));
    let sfu_wall = net.sfu_time - sfu_before;
    let wall = wall.elapsed();
    // The SFU's calls are timed by the wall clock; on a shared machine this thread also waits
    // for a CPU. Scale by the share of time the thread actually ran (scheduler accounting).
    let on_cpu_share = match (sched_before, schedstat()) {
        (Some((c0, w0)), Some((c1, w1))) if c1 > c0 => {
            (c1 - c0) as f64 / ((c1 - c0) + (w1 - w0)) as f64
        }
        _ => 1.0,
    };
    let sfu = sfu_wall.mul_f64(on_cpu_share);
    let forwarded: usize = ids
        .iter()
        .map(|p| net.clients[*p].received.len())
        .sum::<usize>()
        - received_before;

    let media_secs = secs as f64;
    let transmits = net.sent_to.values().sum::<u64>() - transmits_before;
    let with_io = sfu + send_cost * transmits as u32;
    let streams_per_core_io = players as f64 * media_secs / with_io.as_secs_f64();
    let cpu_share = sfu.as_secs_f64() / media_secs; // cores busy
    let per_stream_pct = 100.0 * cpu_share / players as f64;
    let streams_per_core = if cpu_share > 0.0 {
        players as f64 / cpu_share
    } else {
        f64::INFINITY
    };
    let pps_per_core = forwarded as f64 / sfu.as_secs_f64();
    let expected = players as f64 * media_secs * (30.0 * PACKETS_PER_FRAME as f64 + 50.0);
    println!(
        "| {players:>3} | {:>8.1} | {:>5.0} % | {:>7.3} % | {:>9.0} | {:>10.0} | {:>9.0} | {:>6.1} % | {:>9.0} | {:>6.1} |",
        sfu.as_secs_f64() * 1000.0,
        on_cpu_share * 100.0,
        per_stream_pct,
        streams_per_core,
        pps_per_core,
        forwarded as f64 / media_secs,
        100.0 * forwarded as f64 / expected,
        streams_per_core_io,
        wall.as_secs_f64(),
    );
}

fn main() {
    let mut counts = Vec::new();
    let mut secs = 10;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|v| v.parse().ok()).unwrap_or(secs),
            "--bench" => {}
            other => {
                if let Ok(n) = other.parse() {
                    counts.push(n);
                }
            }
        }
    }
    if counts.is_empty() {
        counts = vec![1, 10, 50, 200];
    }
    println!(
        "SFU forwarding, 1 publisher -> N players, {secs} s of media per run (~1.93 Mbit/s H.264 + Opus)"
    );
    let send_cost = udp_send_cost();
    println!(
        "one 1200-byte UDP send_to on loopback: {:.2} µs",
        send_cost.as_secs_f64() * 1e6
    );
    println!(
        "| N | SFU CPU ms | thread on CPU | CPU per forwarded stream | streams/core | packets/s/core | forwarded pkt/s | delivered | streams/core incl. send_to | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        run(n, secs, send_cost);
    }
}
