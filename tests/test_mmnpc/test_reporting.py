"""The report renders the same blocks to Markdown (linked images) and standalone HTML."""
import base64

import cv2
import numpy as np

from mmnpc.reporting import Heading, Image, Paragraph, Table, fmt, write_report


def test_markdown_links_and_html_embeds_the_same_content(tmp_path):
    picture = tmp_path / 'figs' / 'roc.png'
    picture.parent.mkdir()
    cv2.imwrite(str(picture), np.full((4, 4, 3), 200, np.uint8))
    blocks = [Heading('Results'), Paragraph('AUC <0.9> & more'),
              Table(['AUC', 'CI'], [[fmt(0.81234), fmt(None)]]), Image(picture, 'ROC curve')]
    md, page = write_report(tmp_path, blocks, 'demo')
    text = md.read_text()
    assert text.startswith('# demo') and '## Results' in text
    assert '| 0.812 | n/a |' in text and '![ROC curve](figs/roc.png)' in text
    html = page.read_text()
    assert 'AUC &lt;0.9&gt; &amp; more' in html  # escaped, not markup
    assert f'data:image/png;base64,{base64.b64encode(picture.read_bytes()).decode()}' in html
