"""What benches/ort_lstm_bench.py and benches/ort_encode_bench.py share: the
checked operator count of an exported graph and the ONNX Runtime session
both time (CPU provider, `threads` intra-op threads, one inter-op, all graph
optimisations, sequential execution)."""
import collections

import onnx
import onnxruntime as ort


def graph_ops(path):
    """The exported model at `path`, checked, as {op type: count}."""
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def make_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
