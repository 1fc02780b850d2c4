//! Micro-benchmark of PUBLISH framing (`cargo bench --bench decode`): a
//! 64 KiB read buffer full of 64-byte-payload QoS 0 PUBLISH packets (what one
//! socket read holds at full speed) pushed through
//! `attic::mqtt::framing::Decoder` until every packet is framed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use attic::mqtt::framing::{Decoder, Incoming, encode_publish};
use bytes::BytesMut;
use divan::{Bencher, black_box};

fn main() {
    divan::main();
}

/// 64 KiB of whole QoS 0 PUBLISH packets, topics over 50 sensors.
fn read_buffer() -> (Vec<u8>, usize) {
    let mut out = BytesMut::new();
    let mut n = 0;
    loop {
        let mut one = BytesMut::new();
        let topic = format!("bench/sensor/{}", n % 50);
        encode_publish(&topic, &[b'x'; 64], 0, false, 0, &mut one).unwrap();
        if out.len() + one.len() > 64 * 1024 {
            return (out.to_vec(), n);
        }
        out.extend_from_slice(&one);
        n += 1;
    }
}

/// Frames one 64 KiB read; throughput is in packets.
#[divan::bench]
fn publish_qos0_64b_per_64kib_read(bencher: Bencher) {
    let (bytes, n) = read_buffer();
    let mut d = Decoder::new(16 << 20);
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench_local(|| {
            d.push(black_box(&bytes));
            let mut got = 0;
            while let Some(p) = d.next_packet().unwrap() {
                if let Incoming::Publish { payload, .. } = p {
                    got += payload.len();
                }
            }
            assert_eq!(d.buffered(), 0);
            black_box(got)
        });
}
