"""curriculum-cl: class-order curricula for class-incremental learning, and the curriculum designer
(Singh et al., "Learning to Learn: How to Continuously Teach Humans and Machines", ICCV 2023)."""

from curriculum_cl.curricula import CurriculumSpace
from curriculum_cl.designer import score_order
from curriculum_cl.scoring import f_score

__version__ = "0.1.0"
__all__ = ["CurriculumSpace", "f_score", "score_order"]
