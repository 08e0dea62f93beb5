"""DCGAN training speed at the book's settings: ours (Keras) vs the book's PyTorch code, back to back.

Both train the book's 64x64 DCGAN (widths 64, latent 100, batch 256, Adam lr 0.005,
beta_1 0.5) on the same in-memory images, so data loading costs neither side. The
PyTorch side is D2L 17.2's `net_G`, `net_D`, `update_D` and `update_G` as printed in
the book. Prints one JSON line per framework (images/s and CPU seconds per image, the
latter less sensitive to other processes on a shared machine) and one with the ratios.

    python -m benchmarks.gan_dcgan_speed [--steps 3]
"""
import argparse
import time

import numpy as np

from benchmarks.harness import report

BATCH, SIZE, LATENT, WIDTH, LR = 256, 64, 100, 64, 0.005


def keras_steps(images, steps):
    """(wall, CPU) seconds for `steps` training steps of our DCGAN (after one traced warm-up step)."""
    from common.cli import build_config
    from gan.dcgan import BOOK, Config, build
    from gan.gan_model import gan_dataset

    cfg = build_config(Config, {}, preset=BOOK)
    model = build(cfg)
    make = lambda epoch: gan_dataset(images, BATCH, LATENT, 0, epoch)  # noqa: E731
    model.fit(make(0), epochs=1, steps_per_epoch=1, verbose=0)
    tic, cpu = time.perf_counter(), time.process_time()
    model.fit(make(1), epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - tic, time.process_time() - cpu


def torch_steps(images, steps):
    """(wall, CPU) seconds for `steps` training steps of the book's PyTorch DCGAN (after one warm-up step)."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class G_block(nn.Module):
        def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2, padding=1, **kwargs):
            super().__init__(**kwargs)
            self.conv2d_trans = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, strides, padding,
                                                   bias=False)
            self.batch_norm = nn.BatchNorm2d(out_channels)
            self.activation = nn.ReLU()

        def forward(self, X):
            return self.activation(self.batch_norm(self.conv2d_trans(X)))

    class D_block(nn.Module):
        def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2, padding=1, alpha=0.2, **kwargs):
            super().__init__(**kwargs)
            self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding, bias=False)
            self.batch_norm = nn.BatchNorm2d(out_channels)
            self.activation = nn.LeakyReLU(alpha, inplace=True)

        def forward(self, X):
            return self.activation(self.batch_norm(self.conv2d(X)))

    n_G = n_D = WIDTH
    net_G = nn.Sequential(
        G_block(in_channels=LATENT, out_channels=n_G * 8, strides=1, padding=0),
        G_block(in_channels=n_G * 8, out_channels=n_G * 4), G_block(in_channels=n_G * 4, out_channels=n_G * 2),
        G_block(in_channels=n_G * 2, out_channels=n_G),
        nn.ConvTranspose2d(in_channels=n_G, out_channels=3, kernel_size=4, stride=2, padding=1, bias=False),
        nn.Tanh())
    net_D = nn.Sequential(
        D_block(n_D), D_block(in_channels=n_D, out_channels=n_D * 2),
        D_block(in_channels=n_D * 2, out_channels=n_D * 4), D_block(in_channels=n_D * 4, out_channels=n_D * 8),
        nn.Conv2d(in_channels=n_D * 8, out_channels=1, kernel_size=4, bias=False))
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    for w in net_D.parameters():
        nn.init.normal_(w, 0, 0.02)
    for w in net_G.parameters():
        nn.init.normal_(w, 0, 0.02)
    hp = {"lr": LR, "betas": [0.5, 0.999]}
    trainer_D = torch.optim.Adam(net_D.parameters(), **hp)
    trainer_G = torch.optim.Adam(net_G.parameters(), **hp)

    def update_D(X, Z):
        ones, zeros = torch.ones((X.shape[0],)), torch.zeros((X.shape[0],))
        trainer_D.zero_grad()
        real_Y = net_D(X)
        fake_X = net_G(Z)
        fake_Y = net_D(fake_X.detach())
        loss_D = (loss(real_Y, ones.reshape(real_Y.shape)) + loss(fake_Y, zeros.reshape(fake_Y.shape))) / 2
        loss_D.backward()
        trainer_D.step()
        return loss_D

    def update_G(Z):
        ones = torch.ones((Z.shape[0],))
        trainer_G.zero_grad()
        fake_X = net_G(Z)
        fake_Y = net_D(fake_X)
        loss_G = loss(fake_Y, ones.reshape(fake_Y.shape))
        loss_G.backward()
        trainer_G.step()
        return loss_G

    X_all = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))

    def step(i):
        X = X_all[(i * BATCH) % len(X_all):][:BATCH]
        Z = torch.normal(0, 1, size=(BATCH, LATENT, 1, 1))
        update_D(X, Z)
        update_G(Z)

    step(0)
    tic, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i + 1)
    return time.perf_counter() - tic, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per framework (default: 3)")
    args = parser.parse_args(argv)
    images = np.random.default_rng(0).uniform(-1, 1, size=(BATCH * (args.steps + 1), SIZE, SIZE, 3)).astype("float32")
    settings = {"image_size": SIZE, "width": WIDTH, "batch": BATCH}
    n = BATCH * args.steps
    ours, ours_cpu = keras_steps(images, args.steps)
    ours_line = report("dcgan train step, ours (keras/tf)", "images", n, ours,
                       cpu_s_per_image=round(ours_cpu / n, 4), **settings)
    book, book_cpu = torch_steps(images, args.steps)
    book_line = report("dcgan train step, book (pytorch)", "images", n, book,
                       cpu_s_per_image=round(book_cpu / n, 4), **settings)
    report("dcgan speed-up, ours vs book", "images", n, ours, speedup=round(ours_line["rate"] / book_line["rate"], 3),
           cpu_speedup=round(book_cpu / ours_cpu, 3), **settings)


if __name__ == "__main__":
    main()
