"""Train an MMPretrain config with mmengine's Runner, SE support included.

Same arguments as MMPretrain's ``tools/train.py``:

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}] [--debug]

A mistake in the config, the data or a flag ends it before the first step with one line on stderr
and exit status 2, leaving nothing in the work directory.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import se_plugins  # noqa: F401  registers se_cfg and the SE models
from se_plugins.cli import ArgumentParser, InputError, run
from se_plugins.extras import required
from se_plugins.io import check_output

with required('train.py'):
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from se_plugins.engine import checks, setup


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (MMPretrain's arguments)."""
    parser = ArgumentParser(prog='train.py', description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the latest '
        'checkpoint in the work directory')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in dataloaders')
    parser.add_argument(
        '--cfg-options', nargs='+', action=checks.CfgOptions,
        help='override config settings, e.g. train_cfg.max_epochs=3 '
        'model.backbone.se_cfg.ratio=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into ``cfg`` as MMPretrain's tool does (``--cfg-options`` last)."""
    if args.work_dir == '':
        raise InputError("--work-dir '': empty; give the folder for logs and checkpoints")
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    checks.check_launcher(args.launcher)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        checks.check_amp_device()
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume is not None:  # 'auto': the latest checkpoint in work_dir, found below
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    if args.cfg_options is not None:
        checks.merge_cfg_options(cfg, args.cfg_options)
    checks.check_config_values(cfg, ('train_dataloader', 'val_dataloader'))
    if args.resume == 'auto':
        cfg.load_from = checks.latest_checkpoint(cfg.work_dir)
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise InputError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=N) in '
                             f'the config (N: the total batch size its lr is for); {args.config} '
                             'has none')
        cfg.auto_scale_lr.enable = True
    checks.set_dataloader_defaults(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'),
                                   pin_memory=not args.no_pin_memory,
                                   persistent_workers=not args.no_persistent_workers)
    checks.check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
    flag = '--work-dir' if args.work_dir else 'work_dir'
    check_output(cfg.work_dir, flag, folder=True)
    checks.check_work_dir(cfg, args.config, flag)
    out_dir = ((cfg.get('default_hooks') or {}).get('checkpoint') or {}).get('out_dir')
    if isinstance(out_dir, str) and '://' not in out_dir:
        check_output(out_dir, 'default_hooks.checkpoint.out_dir', folder=True)
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Build the Runner from the config and train; a bad input raises :class:`~se_plugins.cli.InputError`."""
    args = parse_args(argv)
    cfg = merge_args(checks.read_config(args.config, checks.TRAIN_KEYS), args)
    setup(cfg)
    flag = '--resume' if args.resume else 'load_from'
    weights = checks.check_load_from(cfg, flag)
    with checks.Preflight(args.config, cfg.work_dir) as preflight:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        checks.check_load_from_fits(runner.model, weights, cfg, flag)
        del weights
        runner.register_hook(checks.DatasetCheckHook(preflight.keep, preflight.started), priority='VERY_HIGH')
        runner.train()


if __name__ == '__main__':
    run(main, 'train.py')
