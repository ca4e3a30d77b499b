"""Messages of the model registry page (versions, rollout, shadow comparison) and the case's model."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "nav.models": ("模型", "Models"),
    "models.title": ("检测模型", "Detector models"),
    "models.explain": (
        "发布的模型版本、分配到设备的在用模型与影子模型，以及影子模型与在用模型的对比。"
        "依据对比结果提升影子模型；出问题时一键回滚到上一在用版本。",
        "Published model versions, the live and shadow models assigned to the boxes, and how the shadow "
        "model compares with the live one. Promote a shadow model on this evidence; roll back to the "
        "previous live version in one click when something goes wrong.",
    ),
    "models.versions": ("模型版本", "Versions"),
    "models.id": ("编号", "Id"),
    "models.name": ("名称与版本", "Name and version"),
    "models.classes": ("类别", "Classes"),
    "models.provenance": ("数据集与训练命令", "Dataset and training command"),
    "models.evaluation": ("评估", "Evaluation"),
    "models.uploaded": ("上传", "Uploaded"),
    "models.role": ("角色", "Role"),
    "models.role.live": ("在用", "live"),
    "models.role.shadow": ("影子", "shadow"),
    "models.all_devices": ("全部设备", "all devices"),
    "models.device": ("设备", "Device"),
    "models.assignments": ("分配记录", "Assignments"),
    "models.action": ("操作", "Action"),
    "models.by": ("操作人", "By"),
    "models.at": ("时间", "At"),
    "models.share": ("影子比例", "Shadow share"),
    "models.promote": ("提升为在用", "Promote to live"),
    "models.shadow": ("作为影子运行", "Run as shadow"),
    "models.rollback": ("回滚在用模型", "Roll back the live model"),
    "models.rolled_back": ("已回滚到版本 {id}", "Rolled back to version {id}"),
    "models.promoted": ("版本 {id} 已提升为在用", "Version {id} is live"),
    "models.shadowed": ("版本 {id} 作为影子运行", "Version {id} runs as shadow"),
    "models.failed": ("未执行：{reason}", "Not done: {reason}"),
    "models.comparison": ("影子对比：版本 {id}", "Shadow comparison: version {id}"),
    "models.agree": ("一致", "Agree"),
    "models.live_only": ("仅在用模型", "Live only"),
    "models.shadow_only": ("仅影子模型", "Shadow only"),
    "models.crops": ("分歧画面", "Disagreements"),
    "models.no_comparison": ("尚无设备上传对比。", "No box has uploaded a comparison yet."),
    "models.empty": ("尚未发布模型。发布命令：", "No model published yet. To publish one:"),
    "models.case_model": ("模型", "Model"),
}
