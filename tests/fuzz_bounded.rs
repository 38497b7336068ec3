//! The CI-sized fuzz run, inside `cargo test`: random and mutated inputs
//! through the same checkers as the cargo-fuzz targets (`fuzz/`), for a
//! fixed time (`SLM_FUZZ_SECONDS`, default 20 s per checker), plus
//! 2×2000 proptest cases. The longer, coverage-guided run is
//! `tests/fuzz.sh [seconds]` (libFuzzer + AddressSanitizer).

mod fuzz_support;

mod bounded_run {
    use std::time::{Duration, Instant};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn budget() -> Duration {
        let s = std::env::var("SLM_FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20.0);
        Duration::from_secs_f64(s)
    }

    /// Inputs: random bytes, plus mutations (byte flips, splices,
    /// truncations) of a small corpus of interesting seeds.
    fn run(name: &str, seeds: &[&[u8]], check: fn(&[u8])) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let deadline = Instant::now() + budget();
        let mut n = 0u64;
        while Instant::now() < deadline {
            for _ in 0..64 {
                let len = (rng.next() % 2048) as usize;
                let mut input: Vec<u8> = if rng.next() % 2 == 0 {
                    (0..len).map(|_| rng.next() as u8).collect()
                } else {
                    let seed = seeds[(rng.next() as usize) % seeds.len()];
                    let mut v = seed.to_vec();
                    for _ in 0..1 + rng.next() % 8 {
                        if v.is_empty() {
                            break;
                        }
                        let at = (rng.next() as usize) % v.len();
                        match rng.next() % 4 {
                            0 => v[at] ^= 1 << (rng.next() % 8),
                            1 => v.insert(at, rng.next() as u8),
                            2 => {
                                v.remove(at);
                            }
                            _ => v.truncate(at),
                        }
                    }
                    v
                };
                input.truncate(4096);
                check(&input);
                n += 1;
            }
        }
        eprintln!("{name}: {n} inputs, 0 failures");
        assert!(n > 0);
    }

    #[test]
    fn framing_bounded_run() {
        let seeds: &[&[u8]] = &[
            b"\x00\x10Content-Length: 10\r\n\r\n{\"a\":1}   ",
            b"\x01\x03\x01\x02abcdefghijklmnopqrstuvwxyz",
            b"\x00\xffContent-Length: 99999999999999999999\r\n\r\n",
            b"\x02\x05\x00\x00\x01\x01\x02\x02\x03\x03\x04\x04\x05\x05\x06\x06",
        ];
        run("framing", seeds, crate::fuzz_support::check_framing);
    }

    #[test]
    fn edits_bounded_run() {
        let seeds: &[&[u8]] = &[
            b"\x00\x01\x05\x06\x07\x08\x01\x02\x03\x04\x05\x06\x07\x08",
            b"\x00\x02\x00\x06\x00\x07\x06\x07\x01\x02\x00\x01\x02\x03\x04\x05\x06",
            b"\x01\x00\x00\x20\x00\x03\x00\x04\xff\x00\xff\x00\x02\x00\x01\x00\x01",
        ];
        run("edits", seeds, crate::fuzz_support::check_edits);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, failure_persistence: None, ..Default::default() })]
        #[test]
        fn framing_proptest(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            crate::fuzz_support::check_framing(&data);
        }
        #[test]
        fn edits_proptest(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            crate::fuzz_support::check_edits(&data);
        }
    }
}
