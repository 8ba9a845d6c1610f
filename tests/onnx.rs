//! ONNX export: the written model decoded back with prost (versions, names, shapes, node order,
//! attributes, weights), its graph run by a small interpreter of the ONNX operators against
//! constnet's forward pass, `constnet export --onnx` and its errors, and the 10,000 MNIST test
//! images run in onnxruntime (when Python has it) against constnet's logits, within 1e-5
//! (relative to logits beyond ±1: a 10-epoch model's reach ±45, where 1e-5 is 3 f32 ulps).
#![cfg(feature = "onnx")]

mod common;

use common::*;
use constnet::data::mnist::{Mnist, OpenOptions};
use constnet::format::onnx::{self, prost::Message, proto::*};
use constnet::{Adam, AdamConfig, Init, MnistMlp, Network, Params, Reference, Simd, Workspace};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

constnet::network! {
    /// Another depth and other names and widths: the export walks any network.
    struct Small { hidden: Dense<5, 3>, head: Dense<3, 2> }
}

constnet::network! {
    /// One layer: a Gemm and no Relu.
    struct Linear { only: Dense<4, 3> }
}

fn decode<N: Network>(net: &N) -> ModelProto {
    let bytes = onnx::to_bytes(net).unwrap();
    ModelProto::decode(&bytes[..]).expect("prost decodes what the exporter wrote")
}

/// A value's element type and dims, as text: `float [N, 784]`.
fn signature(v: &ValueInfoProto) -> String {
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return "not a tensor".into();
    };
    let dims: Vec<String> = (t.shape.iter().flat_map(|s| &s.dim))
        .map(|d| match &d.value {
            Some(DimensionValue::DimValue(n)) => n.to_string(),
            Some(DimensionValue::DimParam(p)) => p.clone(),
            None => "?".into(),
        })
        .collect();
    let elem = if t.elem_type == Some(FLOAT) {
        "float"
    } else {
        "other"
    };
    format!("{elem} [{}]", dims.join(", "))
}

fn text(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("<unset>")
}

/// Checks the graph of a network whose layers are `layers` (names, [OUT, IN]).
fn check_graph<N: Network>(net: &N, layers: &[(&str, [usize; 2])]) {
    let model = decode(net);
    assert_eq!(model.ir_version, Some(8));
    assert_eq!(
        model.opset_import,
        [OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17)
        }]
    );
    assert_eq!(text(&model.producer_name), "constnet");
    assert_eq!(text(&model.producer_version), env!("CARGO_PKG_VERSION"));
    let graph = model.graph.as_ref().expect("a graph");
    let (input, output) = (N::INPUT, N::OUTPUT);
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.output.len(), 1);
    assert_eq!(text(&graph.input[0].name), "input");
    assert_eq!(signature(&graph.input[0]), format!("float [N, {input}]"));
    assert_eq!(text(&graph.output[0].name), "logits");
    assert_eq!(signature(&graph.output[0]), format!("float [N, {output}]"));

    // Gemm, Relu, Gemm, …, Gemm: each node reads what the one before wrote.
    let ops: Vec<&str> = graph.node.iter().map(|n| text(&n.op_type)).collect();
    let mut expected = vec!["Gemm"];
    for _ in 1..layers.len() {
        expected.extend(["Relu", "Gemm"]);
    }
    assert_eq!(ops, expected);
    let mut x = "input".to_string();
    let mut gemms = layers.iter();
    for node in &graph.node {
        assert_eq!(node.input[0], x, "{node:?}");
        assert_eq!(node.output.len(), 1, "{node:?}");
        assert_eq!(text(&node.domain), "", "{node:?}");
        x = node.output[0].clone();
        if node.op_type.as_deref() == Some("Gemm") {
            let (name, _) = gemms.next().unwrap();
            let params = [format!("{name}.weight"), format!("{name}.bias")];
            assert_eq!(node.input[1..], params, "{node:?}");
            let transb = AttributeProto {
                name: Some("transB".into()),
                r#type: Some(AttributeType::Int as i32),
                i: Some(1),
                ..AttributeProto::default()
            };
            assert_eq!(node.attribute, [transb], "{node:?}");
        } else {
            assert_eq!(node.input.len(), 1, "{node:?}");
            assert!(node.attribute.is_empty(), "{node:?}");
        }
    }
    assert_eq!(x, "logits");
    let mut names: Vec<&str> = graph.node.iter().map(|n| text(&n.name)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), graph.node.len(), "node names are unique");

    // The initializers: the safetensors names and shapes, the values bit for bit.
    assert_eq!(graph.initializer.len(), N::TENSORS);
    for (i, t) in graph.initializer.iter().enumerate() {
        let info = N::tensor_info(i);
        let (layer, [out, inp]) = layers[i / 2];
        let (name, dims) = if i % 2 == 0 {
            (format!("{layer}.weight"), vec![out as i64, inp as i64])
        } else {
            (format!("{layer}.bias"), vec![out as i64])
        };
        assert_eq!((text(&t.name), &t.dims), (&name[..], &dims));
        assert_eq!(info.name, name);
        assert_eq!(t.data_type, Some(FLOAT), "{name}");
        assert!(
            t.float_data.is_empty(),
            "{name}: the values are in raw_data"
        );
        let raw: Vec<u8> = net.tensor(i).iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(t.raw_data.as_deref(), Some(&raw[..]), "{name}");
    }
}

#[test]
fn the_model_decodes_to_gemm_and_relu_over_the_safetensors_tensors() {
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(1));
    check_graph(
        &*net,
        &[
            ("fc1", [256, 784]),
            ("fc2", [128, 256]),
            ("fc3", [64, 128]),
            ("fc4", [10, 64]),
        ],
    );
    check_graph(
        &*Small::new_boxed(Init::PyTorch, &mut rng(2)),
        &[("hidden", [3, 5]), ("head", [2, 3])],
    );
    check_graph(
        &*Linear::new_boxed(Init::PyTorch, &mut rng(3)),
        &[("only", [3, 4])],
    );
}

/// A value: row-major data, rows, columns.
type Value = (Vec<f64>, usize, usize);

/// Runs a decoded graph on `n` rows of `x` as ONNX defines its operators (`Gemm`: `A·B + C`
/// with B transposed if `transB` is 1, C broadcast over the rows; `Relu`), in f64, and returns
/// `logits`.
fn interpret(model: &ModelProto, x: &[f32], n: usize) -> Vec<f64> {
    let graph = model.graph.as_ref().unwrap();
    let mut values: HashMap<String, Value> = HashMap::new();
    for t in &graph.initializer {
        let data: Vec<f64> = (t.raw_data.as_ref().unwrap().chunks_exact(4))
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
            .collect();
        let (rows, cols) = match t.dims[..] {
            [r, c] => (r as usize, c as usize),
            [c] => (1, c as usize),
            _ => panic!("{t:?}"),
        };
        values.insert(text(&t.name).into(), (data, rows, cols));
    }
    let data = x.iter().map(|&v| v as f64).collect();
    values.insert("input".into(), (data, n, x.len() / n));
    for node in &graph.node {
        let arg = |i: usize| &values[&node.input[i]];
        let y = match text(&node.op_type) {
            "Gemm" => {
                let ((a, m, k), (b, br, bc), (c, _, _)) = (arg(0), arg(1), arg(2));
                let trans = node
                    .attribute
                    .iter()
                    .any(|at| at.name.as_deref() == Some("transB") && at.i == Some(1));
                let (out, bk) = if trans { (*br, *bc) } else { (*bc, *br) };
                assert_eq!(bk, *k, "{node:?}");
                let mut y = vec![0.0; m * out];
                for i in 0..*m {
                    for j in 0..out {
                        let dot: f64 = (0..*k)
                            .map(|p| {
                                a[i * k + p] * if trans { b[j * k + p] } else { b[p * out + j] }
                            })
                            .sum();
                        y[i * out + j] = dot + c[j];
                    }
                }
                (y, *m, out)
            }
            "Relu" => {
                let (a, m, k) = arg(0);
                (a.iter().map(|v| v.max(0.0)).collect(), *m, *k)
            }
            op => panic!("unexpected operator {op}"),
        };
        values.insert(node.output[0].clone(), y);
    }
    values.remove("logits").unwrap().0
}

/// The graph computes what constnet computes, for networks of several shapes (a transposed
/// weight, a missing or extra Relu, a wrong bias would all show here).
#[test]
fn the_graph_computes_constnet_logits() {
    fn check<N: Network>(seed: u64) {
        let net = N::new_boxed(Init::PyTorch, &mut rng(seed));
        let n = 7;
        let mut draw = rng(seed + 1);
        let x: Vec<f32> = (0..n * N::INPUT)
            .map(|_| uniform(&mut draw, -1.0, 1.0))
            .collect();
        let got = interpret(&decode(&*net), &x, n);
        let mut want = vec![0.0f32; n * N::OUTPUT];
        for (row, logits) in x.chunks(N::INPUT).zip(want.chunks_mut(N::OUTPUT)) {
            net.forward_one::<Reference>(row, logits);
        }
        let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
        assert_close(std::any::type_name::<N>(), &got, &want, |i| {
            1e-5 * (1.0 + want[i].abs())
        });
    }
    check::<MnistMlp>(10);
    check::<Small>(20);
    check::<Linear>(30);
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn constnet(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .output()
        .expect("run constnet");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A runtime failure: exit 1, a message holding every word, nothing on stdout.
fn fails(case: &str, args: &[&str], words: &[&str]) {
    let out = constnet(args);
    assert_eq!(out.code, Some(1), "{case}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{case}: {}", out.stdout);
    for word in words {
        assert!(
            out.stderr.contains(word),
            "{case}: lacks {word:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn the_command_writes_the_model_and_names_the_file_when_it_cannot() {
    let tmp = TempDir::new("onnx-cli");
    let net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(40));
    let model = tmp.path("m.safetensors");
    constnet::format::save(&model, &*net).unwrap();
    let m = model.to_str().unwrap();

    // The default output: the model's name with extension .onnx.
    let out = constnet(&["export", "--onnx", "--model", m]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = tmp.path("m.onnx");
    assert!(
        out.stdout.contains(&format!("wrote {}", written.display())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ONNX IR 8, opset 17"), "{}", out.stdout);
    assert_eq!(
        std::fs::read(&written).unwrap(),
        onnx::to_bytes(&*net).unwrap()
    );

    let text_file = tmp.path("text.safetensors");
    std::fs::write(&text_file, b"hello").unwrap();
    let text_path = text_file.to_str().unwrap();
    fails(
        "not a model file",
        &[
            "export",
            "--onnx",
            "--model",
            text_path,
            "--out",
            tmp.path("x.onnx").to_str().unwrap(),
        ],
        &[text_path, "not a valid safetensors model file"],
    );
    let missing = tmp.path("missing.safetensors");
    fails(
        "no such model",
        &["export", "--onnx", "--model", missing.to_str().unwrap()],
        &[missing.to_str().unwrap(), "No such file"],
    );
    let no_dir = tmp.path("no/such/dir/m.onnx");
    fails(
        "--out in a missing directory",
        &[
            "export",
            "--onnx",
            "--model",
            m,
            "--out",
            no_dir.to_str().unwrap(),
        ],
        &["--out", no_dir.to_str().unwrap(), "does not exist"],
    );
    let dir = tmp.0.to_str().unwrap();
    fails(
        "--out a directory",
        &["export", "--onnx", "--model", m, "--out", dir],
        &["--out", dir, "directory"],
    );
    fails(
        "--out the model itself",
        &["export", "--onnx", "--model", m, "--out", m],
        &["--out", m, "is the model file being exported"],
    );
    let mut back = MnistMlp::zeroed_box();
    constnet::format::load_into(&model, &mut *back).expect("the model is untouched");

    // An int8 model: not exported, and nothing written.
    let pixels: Vec<u8> = (0..20 * 784).map(|i| (i * 37 % 256) as u8).collect();
    let ranges = constnet::quant::calibrate(&*net, &pixels, 20);
    let q = constnet::quant::quantize::<MnistMlp, 4>(&net, &ranges).unwrap();
    let int8 = tmp.path("q.safetensors");
    constnet::quant::file::save(&int8, &q).unwrap();
    fails(
        "an int8 model",
        &["export", "--onnx", "--model", int8.to_str().unwrap()],
        &[int8.to_str().unwrap(), "int8", "f32"],
    );
    assert!(!tmp.path("q.onnx").exists());

    // One format at a time: a usage error.
    let out = constnet(&["export", "--onnx", "--raw", "--model", m]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// Trains a model briefly (300 Adam steps: ~90 % accuracy, the activations a trained model
/// has), or loads `$CONSTNET_ONNX_MODEL`, exports it with the command, and has onnxruntime run
/// all 10,000 test images.
#[test]
fn onnxruntime_matches_constnet_logits_on_the_10000_test_images() {
    let Some(python) = python_with("onnxruntime, numpy") else {
        eprintln!(
            "skipped: no Python with onnxruntime and numpy (set CONSTNET_PYTHON to one; .ci/run \
             makes a venv)"
        );
        return;
    };
    let mnist = Mnist::open(&mnist_dir(), OpenOptions::default()).unwrap();
    let net = match std::env::var_os("CONSTNET_ONNX_MODEL").filter(|p| !p.is_empty()) {
        Some(path) => constnet::format::load::<MnistMlp>(Path::new(&path)).unwrap(),
        None => train_briefly(&mnist),
    };
    let mut ws = <MnistMlp as Network>::Workspace::<64>::zeroed_box();

    // constnet's logits on the test set, batch by batch as `eval` runs it, with the inputs it
    // saw.
    let count = mnist.test.count;
    let (mut inputs, mut logits) = (Vec::new(), Vec::new());
    let mut correct = 0;
    for start in (0..count).step_by(64) {
        let indices: Vec<u32> = (start as u32..count.min(start + 64) as u32).collect();
        let b = indices.len();
        constnet::load_u8_batch::<_, Simd>(
            &mut *ws,
            mnist.test.pixels(),
            mnist.test.labels(),
            &indices,
        );
        net.forward::<Simd, 64>(&mut ws, b, None);
        let (x, z) = (ws.input(b), ws.logits(b));
        let mut predictions = [0u32; 64];
        constnet::logits::argmax(10, b, z, &mut predictions[..b]);
        for j in 0..b {
            inputs.extend((0..784).map(|f| x[f * b + j]));
            logits.extend((0..10).map(|c| z[c * b + j]));
            correct += usize::from(predictions[j] == ws.labels(b)[j]);
        }
    }
    println!("constnet: {correct}/{count} test images right");
    assert!(
        correct > 8000,
        "the model (or its brief training) fails: {correct}/{count}"
    );

    let tmp = TempDir::new("onnxruntime");
    let model = tmp.path("m.safetensors");
    constnet::format::save(&model, &*net).unwrap();
    let exported = tmp.path("m.onnx");
    let out = constnet(&[
        "export",
        "--onnx",
        "--model",
        model.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let data = tmp.path("inputs-and-logits.f32");
    let bytes: Vec<u8> = inputs
        .iter()
        .chain(&logits)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&data, bytes).unwrap();
    // The exact logits (f64, from the exported file's weights): how far each runtime's f32
    // rounding takes it.
    let written = ModelProto::decode(&std::fs::read(&exported).unwrap()[..]).unwrap();
    let exact = interpret(&written, &inputs, count);
    let exact_file = tmp.path("exact.f64");
    let bytes: Vec<u8> = exact.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&exact_file, bytes).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let run = Command::new(&python)
        .arg(&script)
        .args([exported.as_os_str(), data.as_os_str()])
        .args([count.to_string(), "1e-5".into()])
        .arg(&exact_file)
        .output()
        .expect("run the Python check");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "{python} {}: {stdout}{}",
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// 300 Adam steps on random batches of 64 training images.
fn train_briefly(mnist: &Mnist) -> Box<MnistMlp> {
    let mut net = MnistMlp::new_boxed(Init::PyTorch, &mut rng(50));
    let mut grads = MnistMlp::zeroed_box();
    let mut adam = Adam::<MnistMlp>::new_boxed(AdamConfig::DEFAULT);
    let mut ws = <MnistMlp as Network>::Workspace::<64>::zeroed_box();
    let mut order = rng(51);
    let (pixels, labels) = (mnist.train.pixels(), mnist.train.labels());
    for _ in 0..300 {
        let indices: Vec<u32> = (0..64)
            .map(|_| int(&mut order, 0, mnist.train.count - 1) as u32)
            .collect();
        constnet::load_u8_batch::<_, Simd>(&mut *ws, pixels, labels, &indices);
        constnet::train_step::<Simd, _, _, 64>(
            &mut *net,
            &mut *grads,
            &mut *adam,
            &mut ws,
            64,
            1e-3,
            None,
        );
    }
    net
}
