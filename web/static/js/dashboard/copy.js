// Copying a link to the clipboard, with the old selection-and-copy as the fallback.

export async function copyFrom(input) {
  const text = input.value;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}
