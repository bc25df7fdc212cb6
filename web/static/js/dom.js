// Building DOM nodes without innerHTML: text is always set as text, never parsed.

/**
 * el("li", {className: "row", "data-testid": "x", text: "Hello"}, child1, child2)
 * Attributes that are null, undefined or false are left out; true sets an empty attribute.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}
