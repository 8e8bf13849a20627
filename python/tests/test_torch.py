"""cipherflow.torch: encrypted inference of torch models against torch's
own outputs, halves that travel as bytes; SecureSGD's clipping against a
per-example loop, its noise from our generator (not torch's), Poisson
batches, the budget enforced, and training that learns."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import cipherflow.torch as ct  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


class SmallCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.fc1 = torch.nn.Linear(4 * 4 * 4, 16)
        self.fc2 = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x * x  # a polynomial activation: runs as it is
        x = torch.relu(self.fc1(x.flatten(1)))  # approximated
        return self.fc2(x)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return SmallCnn().eval()


def test_encrypted_outputs_match_torch(cnn):
    x = torch.rand(4, 1, 8, 8)
    enc = ct.compile(cnn, x, approximate=7, mode="throughput")
    assert enc.server.approximation[0] == 7
    assert enc.server.input_shape == (1, 8, 8)
    got = enc(x)
    with torch.no_grad():
        want = cnn(x).double()
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 0.05
    assert torch.equal(got.argmax(1), want.argmax(1))


def test_each_activation_gets_its_own_interval():
    """Two ReLUs whose inputs differ in range by 16x: each is approximated
    on 1.25x its own largest input, the widest is what ``approximation``
    reports, and the intervals survive the server's bytes."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 12),
        torch.nn.ReLU(),
        torch.nn.Linear(12, 12),
        torch.nn.ReLU(),
        torch.nn.Linear(12, 10),
    ).eval()
    with torch.no_grad():
        model[3].weight.mul_(16.0)
    x = torch.rand(32, 1, 8, 8)
    enc = ct.compile(model, x, approximate=15)
    widths = enc.server.activation_half_widths
    with torch.no_grad():
        h1 = model[1](x.flatten(1))
        h2 = model[3](torch.relu(h1))
    want = [1.25 * float(h1.abs().max()), 1.25 * float(h2.abs().max())]
    assert len(widths) == 2
    for w, e in zip(widths, want):
        assert abs(w - e) < 1e-3 * e, (widths, want)
    assert widths[1] > 4 * widths[0]
    assert enc.server.approximation == (15, pytest.approx(max(widths)))
    again = ct.Server.from_bytes(enc.server.to_bytes())
    assert again.activation_half_widths == widths
    got = enc(x[:8])
    with torch.no_grad():
        exact = model(x[:8]).double()
    assert torch.equal(got.argmax(1), exact.argmax(1))


def test_halves_travel_as_bytes(cnn):
    x = torch.rand(2, 1, 8, 8)
    enc = ct.compile(cnn, x, approximate=7)
    server = ct.Server.from_bytes(enc.server.to_bytes())  # another process
    server = pickle.loads(pickle.dumps(server))
    client = ct.Client(server.spec.encode())
    assert "weight" not in server.spec
    keys = client.eval_keys()
    answer = server.respond(keys, client.encrypt(x[:1]))
    with torch.no_grad():
        want = cnn(x[:1]).double()
    assert float((client.decrypt(answer) - want).abs().max()) < 0.05
    # Keys parsed once serve every later query.
    loaded = server.load_keys(keys)
    again = client.decrypt(server.respond(loaded, client.encrypt(x[:1])))
    assert float((again - want).abs().max()) < 0.05
    with pytest.raises(ct.CkksError):
        server.load_keys(keys[:100])
    with pytest.raises(ct.CkksError, match="secret key"):
        pickle.dumps(client)
    # Latency mode takes one input per ciphertext.
    with pytest.raises(Exception):
        client.encrypt(x)
    # Garbage instead of a ciphertext or keys: typed errors.
    with pytest.raises(ct.CkksError):
        server.respond(keys, b"CFET\x01garbage")
    with pytest.raises(ct.CkksError):
        server.respond(b"nope", client.encrypt(x[:1]))


def test_unsupported_models_are_refused_with_the_layer_named(cnn):
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ct.ModelError, match="(?i)relu"):
        ct.compile(cnn, x)  # ReLU without an approximation
    pooled = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2), torch.nn.Flatten())
    with pytest.raises(ct.ModelError, match="(?i)max"):
        ct.compile(pooled, x, approximate=7)
    with pytest.raises(ct.ModelError):
        ct.compile(cnn, x, mode="fast")


def _private(model, n=64, batch=16, **kw):
    torch.manual_seed(1)
    X = torch.randn(n, 6)
    y = (X[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(X, y), batch_size=batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw.setdefault("noise_multiplier", 1.0)
    return (X, y) + ct.make_private(model, opt, loader, delta=1e-5, **kw)


def test_clipped_sum_matches_a_per_example_loop():
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    X, y, model, opt, _ = _private(net, max_grad_norm=0.3, epochs=1)
    xb, yb = X[:12], y[:12]
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    got = opt._clipped_sum(model._take())
    want = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for i in range(12):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xb[i : i + 1]), yb[i : i + 1]).backward()
        g = {n: p.grad.clone() for n, p in net.named_parameters()}
        norm = torch.sqrt(sum((v**2).sum() for v in g.values()))
        f = min(1.0, 0.3 / (float(norm) + 1e-6))
        for n in want:
            want[n] += f * g[n]
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-5), n


def test_noise_comes_from_our_generator_and_has_the_stated_scale():
    # Two steps on empty batches from identical states with torch's
    # generator reseeded identically: torch-made noise would repeat.
    def one_update():
        torch.manual_seed(123)
        net = torch.nn.Linear(200, 50)
        before = net.weight.detach().clone()
        _, _, model, opt, _ = _private(net, max_grad_norm=2.0, epochs=1, noise_multiplier=1.5)
        torch.manual_seed(123)
        opt.zero_grad()
        opt.step()  # no forward: an empty batch, pure noise
        return (net.weight.detach() - before) / -0.1  # the gradient that was applied

    a, b = one_update(), one_update()
    assert not torch.allclose(a, b), "the noise repeated with torch's seed"
    # std of the noised gradient: sigma * C / expected batch = 1.5 * 2 / 16.
    assert abs(float(a.std()) - 1.5 * 2.0 / 16) < 0.01


def test_poisson_batches_vary_and_an_empty_batch_is_a_step():
    ds = TensorDataset(torch.randn(1000, 3), torch.zeros(1000))
    loader = ct.PoissonLoader(ds, 0.002)  # expected 2 per batch
    sizes = [len(b[0]) for b in loader]
    assert len(sizes) == 500
    assert 1.5 < np.mean(sizes) < 2.5 and 0 in sizes and max(sizes) > 2
    with pytest.raises(ct.DpError):
        ct.PoissonLoader(ds, 0.0)


def test_budget_is_enforced_and_batch_norm_refused():
    net = torch.nn.Sequential(torch.nn.Linear(6, 2))
    _, _, model, opt, loader = _private(
        net, max_grad_norm=1.0, epochs=1, noise_multiplier=None, target_epsilon=2.0
    )
    assert opt.max_steps == len(loader) == 4
    for xb, yb in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    assert 1.9 < opt.epsilon(1e-5) <= 2.0
    with pytest.raises(ct.DpError, match="budget"):
        opt.step()
    with pytest.raises(ct.DpError, match="(?i)batch normalization"):
        ct.PrivateModule(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)))
    with pytest.raises(ct.DpError, match="exactly one"):
        _private(torch.nn.Linear(6, 2), max_grad_norm=1.0, epochs=1, target_epsilon=1.0)


def test_private_training_learns():
    torch.manual_seed(0)
    X = torch.randn(3000, 10)
    y = (X @ torch.randn(10) > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    model, opt, loader = ct.make_private(
        net,
        torch.optim.SGD(net.parameters(), lr=0.5),
        DataLoader(TensorDataset(X, y), batch_size=100),
        target_epsilon=3.0,
        delta=1e-5,
        max_grad_norm=1.0,
        epochs=3,
    )
    for _ in range(3):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        acc = float((model(X).argmax(1) == y).float().mean())
    assert acc > 0.9, acc
    assert opt.epsilon(1e-5) <= 3.0


def test_progress_is_shown_on_request(cnn, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *a, **kw):  # the plain fallback on stderr
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    x = torch.rand(2, 1, 8, 8)
    enc = ct.compile(cnn, x, approximate=7)
    enc(x, progress=True)
    assert "encrypted batches: 2/2" in capsys.readouterr().err
    enc(x)
    assert capsys.readouterr().err == ""
