"""Messages of drawing missed objects on a case's evidence images (标注漏检目标)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "action.label_added": ("标注漏检目标", "Drew a missed object"),
    "action.label_deleted": ("删除标注", "Deleted a drawn box"),
    "labels.title": ("标注漏检目标 · 案件 #{id}", "Draw missed objects · case #{id}"),
    "labels.open": ("标注漏检目标", "Draw missed objects"),
    "labels.back": ("返回案件", "Back to the case"),
    "labels.help": (
        "在图片上按住并拖动（鼠标、手指或触控笔）框出检测漏掉的目标，选择类型后保存。标注将用于训练模型。",
        "Press and drag on the image (mouse, finger or pen) around an object the detector missed, choose "
        "its type and save. Labels train the model.",
    ),
    "labels.image": ("图片", "Image"),
    "labels.type": ("目标类型", "Object type"),
    "labels.box": ("框（占图片宽高的比例 0–1）", "Box (share of the image's width and height, 0–1)"),
    "labels.save": ("保存标注", "Save the box"),
    "labels.clear": ("重画", "Redraw"),
    "labels.drawn": ("已标注", "Drawn boxes"),
    "labels.none": ("此图片还没有标注", "No box drawn on this image yet"),
    "labels.by": ("标注人", "Drawn by"),
    "labels.delete": ("删除", "Delete"),
    "labels.added": ("标注已保存", "Box saved"),
    "labels.deleted": ("标注已删除", "Box deleted"),
    "labels.no_image": ("此案件没有图片可标注", "This case has no image to draw on"),
    "labels.read_only": (
        "只有值班长、派遣员和管理员可以标注",
        "Only shift leaders, dispatchers and admins draw boxes",
    ),
    "labels.need_box": ("请先在图片上框出目标", "Draw a box on the image first"),
}
