// Read-only Markdown views, opened in VS Code's Markdown preview: "Show last plan and test
// results" (render.ts) and the doctor's report (doctor.ts), through one generic `showMarkdown`.

import * as vscode from "vscode";

import { PipelineResult, renderMarkdown } from "./render";

export const SCHEME = "plancode-result";

export class ResultView implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly contents = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly registration: vscode.Disposable;

  constructor() {
    this.registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, this);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? "# plancode\n\nNo result yet.\n";
  }

  /** Show `result` in the Markdown preview (or as Markdown source if the preview is missing). */
  async show(result: PipelineResult): Promise<vscode.Uri> {
    return this.showMarkdown(`plancode ${result.function}`, renderMarkdown(result));
  }

  /**
   * Show `markdown` as the document `NAME.md` in the Markdown preview (or as Markdown source if
   * the preview is missing). Showing the same name again replaces its text in the open preview.
   */
  async showMarkdown(name: string, markdown: string): Promise<vscode.Uri> {
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${name.replace(/[/\\]/g, "_")}.md` });
    this.contents.set(uri.toString(), markdown);
    this.changed.fire(uri);
    try {
      await vscode.commands.executeCommand("markdown.showPreview", uri);
    } catch {
      const doc = await vscode.workspace.openTextDocument(uri);
      await vscode.languages.setTextDocumentLanguage(doc, "markdown");
      await vscode.window.showTextDocument(doc, { preview: true });
    }
    return uri;
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
  }
}
