"""The lean path of SE after a BatchNorm: same function, same gradients, no saved copy, exports."""
import copy
import io

import pytest
import torch
from torch import nn

from se_plugins import SELayer


class Block(nn.Module):
    """conv -> bn -> SE -> += shortcut -> relu, as a residual block uses SE.

    The block hands SE the norm's input and the norm (``se(bn(z), z, bn)``), as the
    SE-capable blocks of the adapters do; ``memory`` chooses the rescale.
    """

    def __init__(self, lean: bool, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 64, kernel, padding=kernel // 2, bias=False)
        self.bn, self.se = nn.BatchNorm2d(64), SELayer(64, memory='lean' if lean else 'plain')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        y = self.se(self.bn(z), norm_input=z, norm=self.bn)
        y += x.repeat(1, 4, 1, 1)
        return y.relu()


def saved_bytes(model: nn.Module, x: torch.Tensor):
    """Output of ``model(x)`` and the activation bytes autograd keeps (distinct storages, no parameters)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return out, sum(storages.values())


@pytest.fixture(params=[3, 1], ids=['3x3', '1x1'])
def pair(request):
    torch.manual_seed(0)
    plain, lean = Block(lean=False, kernel=request.param), Block(lean=True, kernel=request.param)
    with torch.no_grad():  # a BN far from identity, so that its affine map matters
        plain.bn.weight.normal_()
        plain.bn.bias.normal_()
        plain.bn.running_mean.normal_()
        plain.bn.running_var.uniform_(0.5, 2)
    lean.load_state_dict(plain.state_dict())
    return plain, lean


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_same_output_and_gradients_without_the_saved_copy(pair, mode):
    plain, lean = (getattr(m, mode)() for m in pair)
    x = torch.randn(4, 16, 12, 12)
    xp, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
    yp, bytes_plain = saved_bytes(plain, xp)
    yl, bytes_lean = saved_bytes(lean, xl)
    assert torch.equal(yp, yl)
    grad = torch.randn_like(yp)
    yp.backward(grad)
    yl.backward(grad)
    assert relative(xl.grad, xp.grad) < 1e-5
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        assert relative(q.grad, p.grad) < 1e-4, name
    copy_bytes = 4 * 64 * 12 * 12 * 4  # the BN output (N, C, H, W) in float32
    assert bytes_plain - bytes_lean == copy_bytes


def test_batchnorm_statistics_update_once(pair):
    plain, lean = (m.train() for m in pair)
    for _ in range(3):
        x = torch.randn(4, 16, 8, 8)
        plain(x).sum().backward()
        lean(x.clone()).sum().backward()
    assert int(lean.bn.num_batches_tracked) == 3
    assert torch.equal(lean.bn.running_mean, plain.bn.running_mean)
    assert torch.equal(lean.bn.running_var, plain.bn.running_var)


@pytest.mark.parametrize('hook', ['replace', 'in_place'])
def test_a_hook_that_changes_the_norm_output_takes_the_plain_path(pair, hook):
    """SE must rescale what the hook made, and its gradient must be that of the hooked output."""
    plain, lean = (m.train() for m in pair)
    mask = (torch.rand(1, 64, 1, 1) > 0.5).float()
    for model in (plain, lean):
        model.bn.register_forward_hook(lambda m, args, out: out * mask if hook == 'replace' else out.mul_(mask))
    x = torch.randn(2, 16, 8, 8)
    xp, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
    (yp, bytes_plain), (yl, bytes_lean) = saved_bytes(plain, xp), saved_bytes(lean, xl)
    assert bytes_lean == bytes_plain  # the plain path: x * w keeps x
    assert torch.equal(yp, yl)
    grad = torch.randn_like(yp)
    yp.backward(grad), yl.backward(grad)
    assert relative(xl.grad, xp.grad) < 1e-6
    assert relative(lean.se.conv1.conv.weight.grad, plain.se.conv1.conv.weight.grad) < 1e-5


def test_a_kept_norm_output_is_not_overwritten(pair):
    _, lean = pair
    kept = []
    lean.train().bn.register_forward_hook(lambda module, args, output: kept.append(output))
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    lean(x).sum().backward()
    with torch.no_grad():
        reference = nn.functional.batch_norm(lean.conv(x), None, None, lean.bn.weight, lean.bn.bias, True)
    assert relative(kept[0], reference) < 1e-5


def test_deepcopy_computes_with_the_copy(pair):
    _, lean = pair
    twin = copy.deepcopy(lean)
    with torch.no_grad():
        twin.se.conv2.conv.bias.fill_(-50.0)  # gate ~ 0 in the copy only
    x = torch.randn(1, 16, 6, 6)
    assert not torch.equal(twin(x), lean(x))
    assert twin(x).abs().max() < lean(x).abs().max()


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_gradcheck_and_gradgradcheck_in_float64(mode):
    torch.manual_seed(0)
    block = getattr(Block(lean=True).double(), mode)()
    with torch.no_grad():
        block.bn.weight.normal_(), block.bn.bias.normal_()
        block.bn.running_mean.normal_(), block.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))
    assert torch.autograd.gradgradcheck(block, (x,), fast_mode=True)


@pytest.mark.parametrize('excitation', ['conv', 'linear'])
def test_script_trace_compile_onnx(excitation):
    se = SELayer(32, ratio=4, excitation=excitation).eval()
    x = torch.randn(2, 32, 5, 5)
    assert torch.equal(torch.jit.script(se)(x), se(x))
    assert torch.equal(torch.jit.trace(se, x)(x), se(x))
    if excitation == 'conv':
        assert (torch.compile(se)(x) - se(x)).abs().max() < 1e-6
    ort = pytest.importorskip('onnxruntime')
    buffer = io.BytesIO()
    torch.onnx.export(se, (x,), buffer, opset_version=17, dynamo=False, input_names=['x'],
                      dynamic_axes={'x': {0: 'n', 2: 'h', 3: 'w'}})
    other = torch.randn(3, 32, 7, 4)
    onnx_out = ort.InferenceSession(buffer.getvalue()).run(None, {'x': other.numpy()})[0]
    assert abs(onnx_out - se(other).detach().numpy()).max() < 1e-5


def test_timm_model_gradients_match_timm_seresnet50_and_keep_no_copy():
    """Whole SE-ResNet-50s in float64: a random deep net in training mode turns float32 rounding
    into gradient differences of several percent (timm's own float32 gradients included), so
    the arithmetic is compared where rounding is negligible; float32 is covered per block above."""
    timm = pytest.importorskip('timm')
    from se_plugins.convert import from_timm_native
    torch.manual_seed(0)
    theirs, ours = timm.create_model('seresnet50', num_classes=10), timm.create_model('se_resnet50_plugin', num_classes=10)
    with torch.no_grad():  # timm zero-initialises each block's last BN weight, which would hide SE
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.2, 0.5), m.bias.normal_(0, 0.1)
    ours.load_state_dict(from_timm_native(theirs.state_dict()))
    plain = timm.create_model('resnet50', num_classes=10)
    theirs, ours, plain = (m.double().train() for m in (theirs, ours, plain))
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    (y_theirs, b_theirs), (y_ours, b_ours), (_, b_plain) = (saved_bytes(m, x) for m in (theirs, ours, plain))
    assert relative(y_ours, y_theirs) < 1e-12
    y_theirs.square().sum().backward()
    y_ours.square().sum().backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        reference = grads[name.replace('se.conv1.conv', 'se.fc1').replace('se.conv2.conv', 'se.fc2')].grad
        assert relative(p.grad, reference) < 1e-9, name
    assert torch.equal(ours.layer1[0].bn3.running_mean, theirs.layer1[0].bn3.running_mean)
    assert int(ours.layer4[2].bn3.num_batches_tracked) == 1
    assert b_ours / b_plain < 1.02 < 1.2 < b_theirs / b_plain


@pytest.mark.parametrize('contiguous', [True, False])
def test_channel_sums_in_one_pass(contiguous):
    from se_plugins.layers.rescale import channel_sums
    torch.manual_seed(0)
    g, z = torch.randn(3, 8, 6, 5), torch.randn(3, 8, 6, 5) * 2 + 1
    if not contiguous:
        g, z = g.to(memory_format=torch.channels_last), z.to(memory_format=torch.channels_last)
    mean, rstd = z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=False).add(1e-5).rsqrt()
    g_zhat, g_sum = channel_sums(g, z, mean, rstd)
    zhat = (z - mean.view(1, -1, 1, 1)) * rstd.view(1, -1, 1, 1)
    assert relative(g_zhat, (g * zhat).sum((2, 3))) < 1e-5 and relative(g_sum, g.sum((2, 3))) < 1e-6


def test_whole_timm_model_traces_scripts_and_exports():
    timm = pytest.importorskip('timm')
    ort = pytest.importorskip('onnxruntime')
    torch.manual_seed(0)
    model = timm.create_model('se_resnet18_plugin', num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        assert torch.equal(torch.jit.trace(model, x)(x), reference)
    scriptable = timm.create_model('se_resnet18_plugin', num_classes=10, scriptable=True).eval()
    scriptable.load_state_dict(model.state_dict())
    assert torch.equal(torch.jit.script(scriptable)(x), reference)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, opset_version=17, dynamo=False, input_names=['x'])
    onnx_out = ort.InferenceSession(buffer.getvalue()).run(None, {'x': x.numpy()})[0]
    assert abs(onnx_out - reference.numpy()).max() < 1e-4


def test_the_lean_path_is_taken_only_where_it_is_exact():
    torch.manual_seed(0)
    se, conv, bn = SELayer(8, squeeze_channels=4), nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8)
    h = torch.randn(2, 4, 5, 5)
    z = conv(h)

    def lean(x, z=z, norm=bn, se=se):
        return se.lean_applies(x, z, norm)
    assert lean(bn(z)) and lean(bn.eval()(z)) and not lean(bn(z) * 1.0)
    assert not lean(bn(z).mul_(2.0))  # written in place after the norm
    assert not lean(bn(conv(h)))  # the norm of another tensor
    assert not lean(bn(z), se=SELayer(8, squeeze_channels=4, memory='plain'))
    assert not lean(bn(z), se=SELayer(8, squeeze_channels=4, return_weight=True))
    sync = nn.SyncBatchNorm(8).eval()  # global statistics across processes: plain by type
    sync.load_state_dict(bn.state_dict())
    assert not lean(nn.functional.batch_norm(z, bn.running_mean, bn.running_var), norm=sync)
    assert not lean(nn.GroupNorm(2, 8)(z), norm=nn.GroupNorm(2, 8))
    with torch.no_grad():
        assert not lean(bn(z))
    traced = torch.fx.symbolic_trace(Block(lean=True)).code  # FX records the plain formula, x * gate
    assert 'expand_gate' in traced and 'mul' in traced and 'apply' not in traced
