"""Reference schedulers written from shared/reference/sd-architecture.md §6 (not copied from diffusers).

Arithmetic follows diffusers' dtypes: the ᾱ table is float32 torch; the σ table goes through numpy
(np.interp works in float64, the result is cast back to float32); each step runs on float32 tensors.
All three read the SD 1.5 scheduler_config.json values (scaled_linear 0.00085..0.012, 1000 steps,
steps_offset 1, set_alpha_to_one false, epsilon prediction) and the timestep_spacing each class
defaults to when the config has none: DDIM "leading", Euler and DPM-Solver++ "linspace" (§1.7).

Common contract (diffusers'): set_timesteps(N); .timesteps; .init_noise_sigma;
scale_model_input(x, t); step(eps, t, x) -> x_prev. step() is called once per timestep, in order.
"""
import numpy as np
import torch

NUM_TRAIN = 1000


def alphas_cumprod(beta_start=0.00085, beta_end=0.012, num_train=NUM_TRAIN):
    """ᾱ [1000] float32: betas = linspace(√β0, √β1, 1000, float32)², ᾱ = cumprod(1 − β)."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def sigma_table(ac):
    """σ = √((1 − ᾱ)/ᾱ) as float32 numpy [1000]."""
    return (((1 - ac) / ac) ** 0.5).numpy()


class DDIM:
    """DDIM, η = 0, "leading" spacing + steps_offset, final ᾱ = ᾱ[0] (set_alpha_to_one false), no clipping."""

    def __init__(self, steps_offset=1, set_alpha_to_one=False, **betas):
        self.ac = alphas_cumprod(**betas)
        self.final_ac = torch.tensor(1.0) if set_alpha_to_one else self.ac[0]
        self.steps_offset = steps_offset
        self.init_noise_sigma = 1.0

    def set_timesteps(self, n):
        self.n = n
        ratio = NUM_TRAIN // n
        self.timesteps = torch.from_numpy((np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + self.steps_offset)

    def scale_model_input(self, x, t):
        return x

    def step(self, eps, t, x):
        t = int(t)
        prev_t = t - NUM_TRAIN // self.n
        a_t = self.ac[t]
        a_prev = self.ac[prev_t] if prev_t >= 0 else self.final_ac
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps


class EulerDiscrete:
    """Euler (s_churn = 0), "linspace" float timesteps, σ linearly interpolated, final σ = 0."""

    def __init__(self, **betas):
        self.ac = alphas_cumprod(**betas)

    def set_timesteps(self, n):
        ts = np.linspace(0, NUM_TRAIN - 1, n, dtype=np.float32)[::-1].copy()
        sig = np.interp(ts, np.arange(0, NUM_TRAIN), sigma_table(self.ac))
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(ts.astype(np.float32))
        # linspace spacing: init_noise_sigma = max σ (not √(σ²+1)).
        self.init_noise_sigma = self.sigmas.max()
        self.i = 0

    def scale_model_input(self, x, t):
        s = self.sigmas[self.i]
        return x / ((s ** 2 + 1) ** 0.5)

    def step(self, eps, t, x):
        s = self.sigmas[self.i]
        x0 = x - s * eps
        d = (x - x0) / s
        out = x + d * (self.sigmas[self.i + 1] - s)
        self.i += 1
        return out


class DPMSolverPP2M:
    """DPM-Solver++ 2M, midpoint, lower_order_final, final σ = 0, "linspace" int timesteps (round half to even)."""

    def __init__(self, **betas):
        self.ac = alphas_cumprod(**betas)
        self.init_noise_sigma = 1.0

    def set_timesteps(self, n):
        ts = np.linspace(0, NUM_TRAIN - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
        sig = np.interp(ts, np.arange(0, NUM_TRAIN), sigma_table(self.ac))
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(ts)
        self.i = 0
        self.prev_x0 = None

    def scale_model_input(self, x, t):
        return x

    @staticmethod
    def _alpha_sigma_lambda(s):
        """σ -> (α_t, σ_t, λ) with α_t = 1/√(σ²+1), σ_t = σ·α_t, λ = ln α_t − ln σ_t."""
        a = 1 / ((s ** 2 + 1) ** 0.5)
        st = s * a
        return a, st, torch.log(a) - torch.log(st)

    def step(self, eps, t, x):
        i = self.i
        a_s0, s_s0, l_s0 = self._alpha_sigma_lambda(self.sigmas[i])
        a_t, s_t, l_t = self._alpha_sigma_lambda(self.sigmas[i + 1])
        m0 = (x - s_s0 * eps) / a_s0  # data prediction x0
        h = l_t - l_s0
        last = i == len(self.timesteps) - 1  # final_sigmas_type "zero" -> first order on the last step
        if self.prev_x0 is None or last:
            out = (s_t / s_s0) * x - (a_t * (torch.exp(-h) - 1.0)) * m0
        else:
            _, _, l_s1 = self._alpha_sigma_lambda(self.sigmas[i - 1])
            r0 = (l_s0 - l_s1) / h
            d1 = (1.0 / r0) * (m0 - self.prev_x0)
            out = (s_t / s_s0) * x - (a_t * (torch.exp(-h) - 1.0)) * m0 - 0.5 * (a_t * (torch.exp(-h) - 1.0)) * d1
        self.prev_x0 = m0
        self.i += 1
        return out


SCHEDULERS = {"ddim": DDIM, "dpmpp-2m": DPMSolverPP2M, "euler": EulerDiscrete}


def self_check():
    """Known facts from §6; raises AssertionError on a mismatch."""
    ac = alphas_cumprod()
    assert abs(float(ac[0]) - 0.99915) < 1e-6, float(ac[0])
    assert abs(float(ac[999]) - 0.0046601) < 1e-6, float(ac[999])
    sig = sigma_table(ac)
    assert abs(sig[0] - 0.029167) < 1e-5 and abs(sig[999] - 14.6146) < 1e-3, (sig[0], sig[999])

    d = DDIM()
    d.set_timesteps(50)
    assert d.timesteps.tolist() == list(range(981, 0, -20)), d.timesteps.tolist()
    d.set_timesteps(4)
    assert d.timesteps.tolist() == [751, 501, 251, 1]

    p = DPMSolverPP2M()
    p.set_timesteps(20)
    assert p.timesteps.tolist() == [999, 949, 899, 849, 799, 749, 699, 649, 599, 549, 500, 450, 400, 350, 300, 250, 200, 150, 100, 50], p.timesteps.tolist()
    p.set_timesteps(4)
    assert p.timesteps.tolist() == [999, 749, 500, 250], p.timesteps.tolist()  # 499.5 rounds to even
    assert float(p.sigmas[-1]) == 0.0 and float(p.sigmas[0]) == float(sig[999])

    e = EulerDiscrete()
    e.set_timesteps(4)
    assert e.timesteps.tolist() == [999.0, 666.0, 333.0, 0.0], e.timesteps.tolist()
    assert abs(float(e.init_noise_sigma) - 14.6146) < 1e-3
    e.set_timesteps(3)
    assert e.timesteps.tolist() == [999.0, 499.5, 0.0]
    # σ at a fractional timestep is linear between its neighbours.
    assert abs(float(e.sigmas[1]) - (sig[499] + sig[500]) / 2) < 1e-6

    # DPM++ first-order step to σ = 0 returns x0 exactly; Euler's last step also lands on x0.
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    p.set_timesteps(1)
    out = p.step(eps, p.timesteps[0], x)
    s = p.sigmas[0]
    a = 1 / (s ** 2 + 1) ** 0.5
    assert torch.allclose(out, (x - s * a * eps) / a, atol=1e-5)
    # Oracle test: a model that returns the true ε of x = α·x0 + σ_t·ε (VP) / x0 + σ·ε (Euler's VE scaling)
    # must bring every scheduler back to x0 (DDIM to √ᾱ[0]·x0 + √(1−ᾱ[0])·ε, its final ᾱ).
    x0 = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    for cls in (DDIM, DPMSolverPP2M, EulerDiscrete):
        for n in (1, 2, 4, 10):
            s = cls()
            s.set_timesteps(n)
            if cls is EulerDiscrete:
                x = x0 + noise * s.init_noise_sigma
            else:
                a = s.ac[int(s.timesteps[0])]
                x = a ** 0.5 * x0 + (1 - a) ** 0.5 * noise
            for t in s.timesteps:
                s.scale_model_input(x, t)
                x = s.step(noise, t, x)
            want = ac[0] ** 0.5 * x0 + (1 - ac[0]) ** 0.5 * noise if cls is DDIM else x0
            err = float((x - want).abs().max())
            assert err < 1e-4, (cls.__name__, n, err)
    return True


if __name__ == "__main__":
    self_check()
    print("schedulers self-check ok")
