// "Show last plan and test results": the result rendered as Markdown (render.ts) in a read-only
// virtual document, opened in VS Code's Markdown preview.

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
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/plancode ${result.function}.md` });
    this.contents.set(uri.toString(), renderMarkdown(result));
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
