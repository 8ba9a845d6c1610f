//! `constnet train --hidden`: every architecture trains a few steps from the command line and
//! the model it saves is found again by `eval`, `info`, `predict` and `export`; an unknown list
//! is refused with the list of those there are, and a model file of another network is refused
//! by name and shape (by the commands and by the library).

mod common;

use common::*;
use constnet::{Init, Network, format, network};
use std::process::{Command, Output};

fn constnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_architecture_trains_and_its_model_loads_again() {
    let tmp = TempDir::new("arch");
    let data = tmp.path("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_synthetic_mnist(&data, 256, 64);
    let data = data.to_str().unwrap();
    for (hidden, layers) in [
        ("256,128,64", "784→256→128→64→10"),
        ("512,256", "784→512→256→10"),
        ("800", "784→800→10"),
        ("1024,512", "784→1024→512→10"),
        ("2048,1024", "784→2048→1024→10"),
    ] {
        let model = tmp.path(&format!("{hidden}.safetensors"));
        let model = model.to_str().unwrap();
        let out = constnet(&[
            "train",
            "--hidden",
            hidden,
            "--epochs",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--data",
            data,
            "--out",
            model,
        ]);
        assert!(out.status.success(), "{hidden}: {}", text(&out.stderr));
        let out = constnet(&["eval", "--model", model, "--data", data, "--json"]);
        assert!(out.status.success(), "{hidden}: {}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["total"], 64, "{json}");
        let out = constnet(&["info", "--model", model]);
        let info = text(&out.stdout);
        assert!(out.status.success(), "{hidden}: {}", text(&out.stderr));
        assert!(
            info.contains(&format!("matches the network: yes, {layers}"))
                && info.contains(&format!("network: hidden {hidden}")),
            "{info}"
        );
        let out = constnet(&["predict", "--model", model, "--index", "3", "--data", data]);
        assert!(out.status.success(), "{hidden}: {}", text(&out.stderr));
        let blob = tmp.path(&format!("{hidden}.cnet"));
        let out = constnet(&[
            "export",
            "--raw",
            "--model",
            model,
            "--out",
            blob.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{hidden}: {}", text(&out.stderr));
        let out = constnet(&["info", "--model", blob.to_str().unwrap()]);
        assert!(text(&out.stdout).contains(layers), "{}", text(&out.stdout));
        if hidden != "256,128,64" {
            let out = constnet(&["quantize", "--model", model, "--data", data]);
            let err = text(&out.stderr);
            assert!(!out.status.success() && err.contains(layers), "{err}");
        }
    }
}

/// `--arch reference-bn` names its network with batch norms (a norm's one-dimensional `weight`
/// is no layer of the list), and `eval` and `info` read the model it saves.
#[test]
fn the_reference_network_with_batch_norms_trains_from_the_command() {
    let tmp = TempDir::new("arch-bn");
    let data = tmp.path("mnist");
    std::fs::create_dir_all(&data).unwrap();
    write_synthetic_mnist(&data, 256, 64);
    let (data, model) = (data.to_str().unwrap(), tmp.path("bn.safetensors"));
    let model = model.to_str().unwrap();
    let out = constnet(&[
        "train",
        "--arch",
        "reference-bn",
        "--epochs",
        "1",
        "--data",
        data,
        "--out",
        model,
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("network 784→256→128→64→10 with batch norms"),
        "{stdout}"
    );
    let out = constnet(&["eval", "--model", model, "--data", data, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 64, "{json}");
    let out = constnet(&["info", "--model", model]);
    let info = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        info.contains("matches the network: yes, 784→256→128→64→10")
            && info.contains("batch norms folded in"),
        "{info}"
    );
}

#[test]
fn an_unknown_architecture_is_refused_with_the_list() {
    let out = constnet(&["train", "--hidden", "300,100", "--epochs", "1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for word in ["300,100", "256,128,64", "2048,1024", "800"] {
        assert!(err.contains(word), "{word}: {err}");
    }
}

network! {
    /// A network that is none of the command's.
    pub struct Mlp300 { fc1: Dense<784, 300>, fc2: Dense<300, 10> }
}
network! {
    /// The command's 800 network, as a library user would declare it.
    pub struct Mlp800 { fc1: Dense<784, 800>, fc2: Dense<800, 10> }
}

#[test]
fn a_model_of_another_network_is_refused() {
    let tmp = TempDir::new("arch-other");
    let mut rng = constnet::data::derived_rng(0, 0, 0);
    let path = tmp.path("300.safetensors");
    format::save(&path, &*Mlp300::new_boxed(Init::PyTorch, &mut rng)).unwrap();
    let out = constnet(&["info", "--model", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        err.contains("\"300\"") && err.contains("available") && err.contains("1024,512"),
        "{err}"
    );
    // The library refuses to load a model as another network, naming the tensor and shapes.
    let path = tmp.path("800.safetensors");
    format::save(&path, &*Mlp800::new_boxed(Init::PyTorch, &mut rng)).unwrap();
    let err = format::load::<constnet::MnistMlp>(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fc1.weight") && err.contains("800"), "{err}");
    assert!(format::load::<Mlp800>(&path).is_ok());
    assert_eq!(Mlp800::PARAMS, 784 * 800 + 800 + 800 * 10 + 10);
}
