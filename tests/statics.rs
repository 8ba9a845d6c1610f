//! The no_std embedding case: parameters, optimizer state and workspace built as constants
//! (what a `static` in flash or .bss holds), with no heap and no `alloc` API involved.

use constnet::{
    Adam, AdamConfig, MnistMlp, Network, NetworkView, Params, Simd, Workspace, train_step,
};
use std::sync::Mutex;

constnet::network! {
    struct Small { fc1: Dense<4, 8>, fc2: Dense<8, 3> }
}

struct State {
    net: Small,
    grads: Small,
    adam: Adam<Small>,
    ws: <Small as Network>::Workspace<4>,
}

/// Everything lives in a static, zero-initialised at compile time.
static STATE: Mutex<State> = Mutex::new(State {
    net: Small::ZEROED,
    grads: Small::ZEROED,
    adam: Adam::new(AdamConfig::DEFAULT),
    ws: <<Small as Network>::Workspace<4> as Workspace>::ZEROED,
});

/// A parameter blob as a no_std program would embed it: the reference network's tensors.
static WEIGHTS: MnistMlp = MnistMlp::ZEROED;

#[test]
fn a_network_trains_and_infers_from_static_storage() {
    let mut guard = STATE.lock().unwrap();
    let state = &mut *guard;
    let mut rng = <constnet::Rng as rand_xoshiro::rand_core::SeedableRng>::seed_from_u64(3);
    state.net.init(constnet::Init::PyTorch, &mut rng);
    let rows = [0.5f32, -0.25, 1.0, 0.0, 0.1, 0.2, 0.3, 0.4];
    let mut first = 0.0;
    let mut last = 0.0;
    for step in 0..50 {
        constnet::set_input::<_, Simd>(&mut state.ws, &rows, 2);
        state.ws.labels_mut(2).copy_from_slice(&[2, 0]);
        last = train_step::<Simd, Small, _, 4>(
            &mut state.net,
            &mut state.grads,
            &mut state.adam,
            &mut state.ws,
            2,
            1e-2,
            None,
        );
        if step == 0 {
            first = last;
        }
    }
    assert!(last < first, "loss {first} -> {last}");
    let mut logits = [0.0; 3];
    state.net.forward_one::<Simd>(&rows[..4], &mut logits);
    assert!(logits[2] > logits[0] && logits[2] > logits[1]);

    let mut out = [1.0; 10];
    WEIGHTS.view().forward_one::<Simd>(&[0.0; 784], &mut out);
    assert_eq!(out, [0.0; 10]);
}
