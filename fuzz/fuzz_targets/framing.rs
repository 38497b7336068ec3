#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| slm_ls_fuzz::check_framing(data));
